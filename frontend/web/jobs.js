// The caller's jobs as the page shows them: a table, newest first, kept current by
// the event stream, and the result of one selected job.

const RANK = { queued: 0, running: 1 };
const rank = (status) => RANK[status] ?? 2;
export const isFinished = (status) => rank(status) === 2;

const $ = (id) => document.getElementById(id);

function el(tag, attributes = {}, text = '') {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  if (text) node.textContent = text;
  return node;
}

function time(value) {
  if (!value) return '';
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? String(value) : date.toLocaleString();
}

export class JobTable {
  // `actions`: `{ view(id), cancel(id), erase(id) }`, called by the row buttons.
  constructor(actions) {
    this.actions = actions;
    this.jobs = new Map();
    this.body = $('jobs').querySelector('tbody');
  }

  // Replaces the list with the server's, keeping any newer status an event brought.
  load(views) {
    const previous = this.jobs;
    this.jobs = new Map();
    for (const view of views) {
      const known = previous.get(view.id);
      this.jobs.set(view.id, known && rank(known.status) > rank(view.status) ? { ...view, ...known } : view);
    }
    this.render();
  }

  has(id) {
    return this.jobs.has(id);
  }

  // Applies a transition `{id, status, at, attempt}`; false when the job is unknown here.
  apply(event) {
    const job = this.jobs.get(event.id);
    if (!job) return false;
    if (rank(event.status) < rank(job.status)) return true;
    job.status = event.status;
    if (event.attempt) job.attempt = event.attempt;
    if (event.status === 'running') job.started_at = event.at;
    if (isFinished(event.status)) job.finished_at = event.at;
    this.render();
    return true;
  }

  // Takes a job view the API returned (e.g. by cancel).
  update(view) {
    if (this.jobs.has(view.id)) this.jobs.set(view.id, { ...this.jobs.get(view.id), ...view });
    this.render();
  }

  remove(id) {
    this.jobs.delete(id);
    this.render();
  }

  render() {
    const rows = [...this.jobs.values()].sort((a, b) => (a.id < b.id ? 1 : -1));
    this.body.replaceChildren(...rows.map((job) => this.row(job)));
    $('no-jobs').hidden = rows.length > 0;
  }

  row(job) {
    const tr = el('tr', { 'data-id': job.id, 'data-status': job.status });
    tr.append(
      el('td', { class: 'id', title: job.id }, job.id.slice(-12)),
      el('td', { class: 'repo', title: `${job.repo ?? ''} ${job.ref ?? ''}` }, `${job.repo ?? ''} @ ${job.ref ?? ''}`),
      el('td', { class: `status status-${job.status}` }, job.cancel_requested_at && !isFinished(job.status)
        ? `${job.status} (cancelling)` : job.status),
      el('td', { class: 'attempt' }, job.attempt ? String(job.attempt) : ''),
      el('td', { class: 'submitted' }, time(job.submitted_at)),
      el('td', { class: 'started' }, time(job.started_at)),
      el('td', { class: 'finished' }, time(job.finished_at)),
    );
    const actions = el('td', { class: 'actions' });
    const button = (name, label, handler) => {
      const b = el('button', { type: 'button', class: name }, label);
      b.addEventListener('click', () => handler(job.id));
      actions.append(b);
    };
    button('log', 'Log', this.actions.log);
    if (isFinished(job.status)) {
      button('view', 'Result', this.actions.view);
      button('erase', 'Erase', this.actions.erase);
    } else {
      button('cancel', 'Cancel', this.actions.cancel);
    }
    tr.append(actions);
    return tr;
  }
}

function pretty(value) {
  return value === undefined || value === null ? '' : JSON.stringify(value, null, 2);
}

// Fills the result panel with a result from `GET /v1/jobs/{id}/result`.
export function showResult(result) {
  $('result').hidden = false;
  $('result').dataset.id = result.job_id;
  $('result-id').textContent = result.job_id;
  $('result-status').textContent = result.status;
  $('result-status').className = `status status-${result.status}`;
  $('result-reason').textContent = result.reason ?? '';
  $('result-exit').textContent = result.exit_code ?? '';
  $('result-commit').textContent = result.commit_sha ?? '';
  const t = result.timings || {};
  $('result-timings').textContent = `queued ${t.queue_ms ?? '?'} ms, ran ${t.run_ms ?? '?'} ms, total ${t.total_ms ?? '?'} ms`
    + (t.visible_ms === undefined ? '' : `, visible ${t.visible_ms} ms after`)
    + ` (attempt ${result.attempt ?? '?'}, ${result.executor_id ?? 'no executor'})`;
  drawTimings(t);
  $('result-output').textContent = pretty(result.output);
  $('result-stderr').textContent = result.stderr_tail ?? '';
}

// The job's time as one bar: queued, then running, then until its result was
// visible through the API, each part as wide as its share (the numbers are in the
// text beside it and in the parts' titles).
function drawTimings(t) {
  const bar = $('result-bar');
  const total = Math.max(1, (t.queue_ms ?? 0) + (t.run_ms ?? 0) + (t.visible_ms ?? 0));
  const part = (name, value) => {
    const span = el('span', { class: `part ${name}`, title: `${name} ${value ?? '?'} ms`, 'data-ms': String(value ?? '') });
    span.style.width = `${(100 * (value ?? 0)) / total}%`;
    return span;
  };
  bar.replaceChildren(part('queue', t.queue_ms), part('run', t.run_ms), part('visible', t.visible_ms));
  bar.hidden = t.queue_ms === undefined && t.run_ms === undefined;
}

export function hideResult(id) {
  if (id === undefined || $('result').dataset.id === id) $('result').hidden = true;
}
