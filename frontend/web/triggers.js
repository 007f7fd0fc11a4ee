// Triggers in the web app: the caller's schedules and topic bindings, a form for
// a schedule of one of their functions, pause/resume and delete.

import { api } from './api.js';
import { button, cell } from './functions.js';

const $ = (id) => document.getElementById(id);
const path = (name, rest = '') => `/v1/triggers/${encodeURIComponent(name)}${rest}`;

export const triggers = {
  list: () => api('GET', '/v1/triggers'),
  put: (name, request) => api('PUT', path(name), request),
  pause: (name) => api('POST', path(name, '/pause')),
  resume: (name) => api('POST', path(name, '/resume')),
  remove: (name) => api('DELETE', path(name)),
};

function source(t) {
  if (t.schedule) return `every ${t.schedule.cron} (${t.schedule.timezone}, missed: ${t.schedule.missed})`;
  const out = t.topic.output ? ` → ${t.topic.output}` : '';
  return `topic ${t.topic.input}${out} (concurrency ${t.topic.concurrency})`;
}

// The triggers table; `actions` are async callbacks taking the trigger's name.
export class TriggerTable {
  constructor(actions) {
    this.actions = actions;
  }

  load(list) {
    const body = $('triggers').querySelector('tbody');
    body.replaceChildren();
    for (const t of list) {
      const tr = document.createElement('tr');
      tr.dataset.name = t.name;
      const when = t.next_tick ? new Date(t.next_tick).toLocaleString() : '';
      tr.append(
        cell(t.name, 'name'),
        cell(t.function, 'function'),
        cell(source(t), 'source'),
        cell(t.enabled ? 'active' : 'paused', 'state'),
        cell(when, 'next'),
      );
      const actions = document.createElement('td');
      actions.append(
        t.enabled ? button('Pause', 'pause', () => this.actions.pause(t.name))
          : button('Resume', 'resume', () => this.actions.resume(t.name)),
        button('Delete', 'delete', () => this.actions.remove(t.name)),
      );
      tr.append(actions);
      body.append(tr);
    }
    $('no-triggers').hidden = list.length > 0;
  }
}

// The schedule form's trigger.
export function scheduleRequest() {
  const name = $('trg-name').value.trim();
  const schedule = { cron: $('trg-cron').value.trim() };
  const zone = $('trg-zone').value.trim();
  if (zone) schedule.timezone = zone;
  return { name, request: { function: $('trg-function').value.trim(), schedule } };
}
