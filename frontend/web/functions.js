// Named functions in the web app: the caller's functions with their current
// version, a deploy form (a new version pinned to the commit the ref names now),
// invoke by name with an input (the result is shown like a job's), rollback.

import { api } from './api.js';

const $ = (id) => document.getElementById(id);
const path = (name, rest = '') => `/v1/functions/${encodeURIComponent(name)}${rest}`;

export const functions = {
  list: () => api('GET', '/v1/functions'),
  deploy: (name, request) => api('PUT', path(name), request),
  versions: (name) => api('GET', path(name, '/versions')),
  rollback: (name, version) => api('POST', path(name, '/rollback'), { version }),
  remove: (name) => api('DELETE', path(name)),
  // waits up to 30 s for the result; a longer job answers 202 with its id
  invoke: (name, input) => api('POST', `${path(name, '/invoke')}?wait=30`, { input }),
};

// A table cell with `text`; the table modules of the page share it.
export function cell(text, className) {
  const td = document.createElement('td');
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

export function button(label, className, action) {
  const b = document.createElement('button');
  b.type = 'button';
  b.textContent = label;
  b.className = className;
  b.addEventListener('click', action);
  return b;
}

// The functions table; `actions` are async callbacks taking the function's name.
export class FunctionTable {
  constructor(actions) {
    this.actions = actions;
  }

  load(list) {
    const body = $('functions').querySelector('tbody');
    body.replaceChildren();
    for (const f of list) {
      const tr = document.createElement('tr');
      tr.dataset.name = f.name;
      tr.append(
        cell(f.name, 'name'),
        cell(String(f.current.version), 'version'),
        cell(f.current.commit_sha.slice(0, 12), 'commit'),
        cell(`${f.current.repo} @ ${f.current.ref}`),
        cell(new Date(f.updated_at).toLocaleString()),
      );
      const actions = document.createElement('td');
      actions.append(
        button('Invoke', 'invoke', () => this.actions.invoke(f.name)),
        f.current.version > 1 ? button(`Roll back to ${f.current.version - 1}`, 'rollback',
          () => this.actions.rollback(f.name, f.current.version - 1)) : '',
        button('Delete', 'delete', () => this.actions.remove(f.name)),
      );
      tr.append(actions);
      body.append(tr);
    }
    $('no-functions').hidden = list.length > 0;
  }
}

// The deploy form's request: a job's fields without its input.
export function deployment() {
  const name = $('fn-name').value.trim();
  const request = { repo: $('fn-repo').value.trim() };
  const gitRef = $('fn-ref').value.trim();
  if (gitRef) request.ref = gitRef;
  if ($('fn-runtime').value) request.runtime = $('fn-runtime').value;
  return { name, request };
}

// The input to invoke with, from the invoke box.
export function invocationInput() {
  const text = $('fn-input').value.trim();
  try {
    return text ? JSON.parse(text) : null;
  } catch (error) {
    throw new Error(`the input is not JSON: ${error.message}`);
  }
}
