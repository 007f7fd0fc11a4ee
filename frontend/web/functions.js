// Named functions in the web app: the caller's functions with their current
// version, a deploy form (a new version pinned to the commit the ref names now),
// invoke by name with an input (the result is shown like a job's), rollback, and
// a function's state (its keys and values, deleted one by one or all at once).

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
  state: (name) => api('GET', path(name, '/state')),
  deleteKey: (name, key) => api('DELETE', path(name, `/state/${keySegment(key)}`)),
  clearState: (name) => api('DELETE', path(name, '/state')),
};

// A state key as one path segment. A URL resolves a `.` or `..` segment away (so
// `DELETE …/state/..` would be the function's own route): such a key is refused.
function keySegment(key) {
  if (key === '.' || key === '..') throw new Error(`the key "${key}" cannot be named in a URL`);
  return encodeURIComponent(key);
}

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
        button('State', 'state', () => this.actions.state(f.name)),
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

// One function's state: its keys in key order, each value as compact JSON, with a
// delete button per key; `actions.remove(name, key)` is an async callback.
export class StatePanel {
  constructor(actions) {
    this.actions = actions;
    this.name = undefined;
  }

  show(view) {
    this.name = view.function;
    $('fn-state').hidden = false;
    $('state-name').textContent = view.function;
    const body = $('state-keys').querySelector('tbody');
    body.replaceChildren();
    const entries = Object.entries(view.keys || {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    for (const [key, value] of entries) {
      const tr = document.createElement('tr');
      tr.dataset.key = key;
      const actions = document.createElement('td');
      actions.append(button('Delete', 'delete', () => this.actions.remove(view.function, key)));
      tr.append(cell(key, 'key'), cell(JSON.stringify(value), 'value'), actions);
      body.append(tr);
    }
    $('state-keys').hidden = entries.length === 0;
    $('state-clear').hidden = entries.length === 0;
    $('no-state').hidden = entries.length > 0;
  }

  // Hides the panel: whatever it shows, or only when it shows function `name`.
  hide(name) {
    if (name !== undefined && name !== this.name) return;
    this.name = undefined;
    $('fn-state').hidden = true;
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
