// The operator view (admin role): the observer's reports as live charts — λ and μ, ρ,
// waiting and response time against the target, backlog, running jobs, current and
// recommended workers — with each add/remove decision marked on the timeline and
// listed with its reason, and the observer's parameters editable. The reports the
// frontend kept come first (`GET /v1/admin/observer/reports`, which also tells whether
// the caller is an admin), then each new one over the report stream (a websocket) as
// the observer makes it; after a drop the view reconnects from the last one it has.

import { ApiError, admin } from './api.js';
import { markerPlugin, timeChart } from './charts.js';

const $ = (id) => document.getElementById(id);
const RETRY_MS = 1000;
const KEEP = 900; // reports kept: 15 min at the observer's default interval of 1 s
const PARAMS = ['target_statistic', 'target_response_ms', 'min_workers', 'max_workers',
  'scale_out_cooldown_secs', 'scale_in_cooldown_secs', 'hysteresis'];
const MARK_COLOR = { add: '#2f855a', remove: '#c53030' };

const num = (value) => (value === undefined || value === null ? null : Number(value));
const ms = (stats, statistic) => (stats ? stats[statistic === 'mean' ? 'mean_ms' : `${statistic}_ms`] / 1000 : null);

// The figures one report contributes to the charts and the table of latest values.
export function figures(report) {
  const m = report.metrics;
  const statistic = report.params.target_statistic;
  return {
    at: Date.parse(report.at) / 1000,
    lambda: m.arrival_rate,
    mu: num(m.service_rate_per_worker),
    rho: num(m.utilisation),
    wait: ms(m.waiting, statistic),
    response: ms(m.response, statistic),
    target: report.params.target_response_ms / 1000,
    backlog: m.backlog,
    running: m.running,
    workers: report.current_workers,
    recommended: report.desired_workers,
  };
}

const show = (value, digits = 3) => (value === null || value === undefined || Number.isNaN(value) ? '–'
  : Number.isInteger(value) ? String(value) : value.toFixed(digits));

export class Operator {
  constructor(onError) {
    this.onError = onError;
    this.points = [];
    this.marks = [];
    this.timer = undefined;
    this.socket = undefined;
    this.running = false;
    this.lastAt = undefined;
    this.paramsShown = false;
  }

  setUp() {
    $('params-form').addEventListener('submit', (event) => this.saveParams(event).catch(this.onError));
    const plugins = [markerPlugin(this.marks)];
    this.charts = {
      rates: timeChart($('op-rates'), { plugins, scales: { rate: 'jobs / s', rho: 'ρ' },
        series: [{ label: 'λ arrivals' }, { label: 'μ per worker' }, { label: 'ρ', scale: 'rho' }] }),
      times: timeChart($('op-times'), { plugins, scales: { s: 'seconds' },
        series: [{ label: 'waiting' }, { label: 'response' }, { label: 'target' }] }),
      load: timeChart($('op-load'), { plugins, scales: { n: 'jobs / workers' },
        series: [{ label: 'backlog' }, { label: 'running' }, { label: 'workers' }, { label: 'recommended' }] }),
    };
  }

  // Starts following the reports; the section stays hidden for a caller without the admin role.
  start() {
    if (this.running) return;
    this.running = true;
    if (!this.charts) this.setUp();
    this.resume();
  }

  stop() {
    this.running = false;
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.socket) this.socket.close();
    this.socket = undefined;
    $('operator').hidden = true;
  }

  // Catches up on the kept reports, then follows the stream; tried again after a failure.
  async resume() {
    try {
      await this.catchUp();
    } catch (error) {
      if (error instanceof ApiError && (error.status === 401 || error.status === 403)) return this.stop();
      this.onError(error);
      this.retry();
      return;
    }
    if (!this.running) return;
    const socket = admin.reportStream(this.lastAt);
    this.socket = socket;
    socket.addEventListener('message', (message) => {
      try {
        this.arrived([JSON.parse(message.data)]);
      } catch (error) {
        console.warn('unreadable report', error);
      }
    });
    socket.addEventListener('close', () => {
      if (this.socket === socket) this.retry();
    });
  }

  retry() {
    this.socket = undefined;
    if (this.running) this.timer = setTimeout(() => this.resume(), RETRY_MS);
  }

  // The reports since the last one drawn (the first time, those the frontend kept: the
  // charts start with the last quarter of an hour).
  async catchUp() {
    const { body } = await admin.reports(this.lastAt);
    $('operator').hidden = false; // an admin
    if (body.reports.length === 0) $('op-waiting').hidden = this.lastAt !== undefined; // none yet
    this.arrived(body.reports);
  }

  // Keeps each report newer than the last one drawn, and draws the newest.
  arrived(reports) {
    const fresh = reports.filter((r) => this.lastAt === undefined || Date.parse(r.at) > Date.parse(this.lastAt));
    if (fresh.length === 0) return;
    $('op-waiting').hidden = true;
    for (const report of fresh) this.add(report);
    this.lastAt = fresh[fresh.length - 1].at;
    this.draw(fresh[fresh.length - 1]);
  }

  add(report) {
    const f = figures(report);
    this.points.push(f);
    if (this.points.length > KEEP) this.points.shift();
    if (report.action === 'add' || report.action === 'remove') this.decision(report, f.at);
  }

  draw(report) {
    const f = figures(report);
    const column = (key) => this.points.map((p) => p[key]);
    const times = column('at');
    this.charts.rates.set([times, column('lambda'), column('mu'), column('rho')]);
    this.charts.times.set([times, column('wait'), column('response'), column('target')]);
    this.charts.load.set([times, column('backlog'), column('running'), column('workers'), column('recommended')]);
    for (const [key, value] of Object.entries(f)) {
      const cell = $(`op-${key}`);
      if (cell) cell.textContent = key === 'at' ? new Date(value * 1000).toLocaleTimeString() : show(value);
    }
    $('op-action').textContent = report.action;
    $('op-reason').textContent = report.reason;
    $('operator').dataset.reportAt = report.at;
    if (!this.paramsShown) this.showParams(report.params);
  }

  decision(report, at) {
    this.marks.push({ at, color: MARK_COLOR[report.action] });
    const tr = document.createElement('tr');
    tr.dataset.action = report.action;
    const cells = [new Date(at * 1000).toLocaleTimeString(), report.action,
      `${report.current_workers} → ${report.desired_workers}`, report.reason];
    tr.append(...cells.map((text) => Object.assign(document.createElement('td'), { textContent: text })));
    $('op-decisions').querySelector('tbody').prepend(tr);
    $('op-no-decisions').hidden = true;
  }

  showParams(params) {
    this.paramsShown = true;
    for (const name of PARAMS) $(`param-${name}`).value = params[name] ?? '';
  }

  async saveParams(event) {
    event.preventDefault();
    const params = {};
    for (const name of PARAMS) {
      const value = $(`param-${name}`).value.trim();
      if (value !== '') params[name] = name === 'target_statistic' ? value : Number(value);
    }
    const { body } = await admin.setParams(params);
    $('params-status').textContent = `published; in force from the observer's next report: ${JSON.stringify(body.effective)}`;
  }
}
