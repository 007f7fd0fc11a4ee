// The caller's last hour at a glance: jobs finished per minute by status, and the
// end-to-end (submitted → finished) and queue (submitted → started) times' p50 and p95
// of the jobs finished in each minute. Computed here from the job list the API returns
// (`GET /v1/jobs`, newest first, paged), drawn as two charts and always listed in a table.

import { jobs } from './api.js';
import { timeChart } from './charts.js';

const $ = (id) => document.getElementById(id);
const MINUTE = 60000;
const WINDOW_MINUTES = 60;
const MAX_PAGES = 20;

// The q-quantile of `values` by nearest rank; null without values.
export function quantile(values, q) {
  if (!values.length) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)];
}

const seconds = (from, to) => (Date.parse(to) - Date.parse(from)) / 1000;

// Per minute of the hour ending with the current minute: `{ minutes (epoch s),
// statuses, counts: { status: [n per minute] }, e2e: { p50, p95 }, queue: { p50, p95 } }`.
export function overview(list, now = Date.now()) {
  const first = Math.floor(now / MINUTE) * MINUTE - (WINDOW_MINUTES - 1) * MINUTE;
  const minutes = Array.from({ length: WINDOW_MINUTES }, (_, i) => (first + i * MINUTE) / 1000);
  const counts = {};
  const e2e = minutes.map(() => []);
  const queue = minutes.map(() => []);
  for (const job of list) {
    if (!job.finished_at) continue;
    const i = Math.floor((Date.parse(job.finished_at) - first) / MINUTE);
    if (!(i >= 0 && i < WINDOW_MINUTES)) continue;
    (counts[job.status] ??= minutes.map(() => 0))[i] += 1;
    if (job.submitted_at) e2e[i].push(seconds(job.submitted_at, job.finished_at));
    if (job.submitted_at && job.started_at) queue[i].push(seconds(job.submitted_at, job.started_at));
  }
  const stats = (samples) => ({ p50: samples.map((s) => quantile(s, 0.5)), p95: samples.map((s) => quantile(s, 0.95)) });
  return { minutes, statuses: Object.keys(counts).sort(), counts, e2e: stats(e2e), queue: stats(queue) };
}

// The caller's jobs that may have finished in the last hour: pages until one begins
// before the window (a job finishes after it is submitted).
async function lastHourJobs(now) {
  const since = now - WINDOW_MINUTES * MINUTE;
  const all = [];
  let before;
  for (let page = 0; page < MAX_PAGES; page += 1) {
    const { body } = await jobs.page(before);
    all.push(...body.jobs);
    const oldest = body.jobs[body.jobs.length - 1];
    if (!body.next || !oldest || Date.parse(oldest.submitted_at) < since) break;
    before = body.next;
  }
  return all;
}

const fmt = (value) => (value === null ? '' : value.toFixed(3));

function renderTable(view) {
  const head = $('overview-table').querySelector('thead tr');
  head.replaceChildren(...['minute', ...view.statuses, 'e2e p50 (s)', 'e2e p95 (s)', 'queue p50 (s)', 'queue p95 (s)']
    .map((label) => Object.assign(document.createElement('th'), { textContent: label })));
  const rows = [];
  view.minutes.forEach((minute, i) => {
    const counts = view.statuses.map((s) => view.counts[s][i]);
    if (!counts.some((n) => n > 0)) return;
    const tr = document.createElement('tr');
    tr.dataset.minute = String(minute);
    const cells = [new Date(minute * 1000).toLocaleTimeString(), ...counts.map(String),
      fmt(view.e2e.p50[i]), fmt(view.e2e.p95[i]), fmt(view.queue.p50[i]), fmt(view.queue.p95[i])];
    tr.append(...cells.map((text) => Object.assign(document.createElement('td'), { textContent: text })));
    rows.push(tr);
  });
  $('overview-table').querySelector('tbody').replaceChildren(...rows.reverse());
  $('overview-empty').hidden = rows.length > 0;
}

export class Overview {
  constructor() {
    this.pending = undefined;
    this.charts = undefined;
  }

  // Charts are made once the status set is known (one bar series per status).
  draw(view) {
    const key = view.statuses.join(',');
    if (!this.charts || this.charts.key !== key) {
      if (this.charts) [this.charts.finished, this.charts.times].forEach((c) => c.destroy());
      this.charts = {
        key,
        finished: timeChart($('overview-finished'), {
          series: view.statuses.map((status) => ({ label: status, bars: true })), scales: { jobs: 'jobs / min' },
        }),
        times: timeChart($('overview-times'), {
          series: [{ label: 'e2e p50' }, { label: 'e2e p95' }, { label: 'queue p50' }, { label: 'queue p95' }],
          scales: { s: 'seconds' },
        }),
      };
    }
    this.charts.finished.set([view.minutes, ...view.statuses.map((s) => view.counts[s])]);
    this.charts.times.set([view.minutes, view.e2e.p50, view.e2e.p95, view.queue.p50, view.queue.p95]);
  }

  async refresh() {
    const now = Date.now();
    const view = overview(await lastHourJobs(now), now);
    this.draw(view);
    renderTable(view);
    $('overview').dataset.updated = String(now);
  }

  // Many jobs finishing at once redraw once.
  soon(onError) {
    clearTimeout(this.pending);
    this.pending = setTimeout(() => this.refresh().catch(onError), 500);
  }
}
