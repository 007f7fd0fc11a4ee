// The web app's charts in a real browser (used by webapp.mjs): the overview's data
// against what the API returns, a job's timing bar, and the operator view against the
// observer's latest report, with a decision marked after a load step. Screenshots go
// to GITFAAS_WEB_ARTIFACTS (a directory outside the repository), if set.
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const artifacts = process.env.GITFAAS_WEB_ARTIFACTS;

export async function screenshot(page, name) {
  if (!artifacts) return;
  mkdirSync(artifacts, { recursive: true });
  await page.screenshot({ path: join(artifacts, `${name}.png`), fullPage: true });
}

async function getJson(base, token, path) {
  const answer = await fetch(`${base}${path}`, { headers: { authorization: `Bearer ${token}` } });
  assert.equal(answer.status, 200, `${path}: ${answer.status}`);
  return answer.json();
}

// Jobs finished per minute by status over the chart's minutes, from the API's list.
function countsFromApi(jobs, minutes) {
  const first = minutes[0] * 1000;
  const counts = {};
  for (const job of jobs) {
    if (!job.finished_at) continue;
    const i = Math.floor((Date.parse(job.finished_at) - first) / 60000);
    if (i < 0 || i >= minutes.length) continue;
    (counts[job.status] ??= minutes.map(() => 0))[i] += 1;
  }
  return Object.keys(counts).sort().map((status) => [status, counts[status]]);
}

// The overview chart holds, per minute and status, what `GET /v1/jobs` says finished.
export async function checkOverview(page, base, token, { atLeast }) {
  let last;
  for (let tries = 0; tries < 20; tries += 1) {
    const chart = await page.evaluate(() => document.getElementById('overview-finished').chartData);
    const { jobs } = await getJson(base, token, '/v1/jobs?limit=100');
    if (chart) {
      const labels = await page.evaluate(() => [...document.querySelectorAll('#overview-table thead th')]
        .slice(1, -4).map((th) => th.textContent));
      const shown = labels.map((status, i) => [status, chart[i + 1]]);
      const total = shown.reduce((n, [, c]) => n + c.reduce((a, b) => a + b, 0), 0);
      last = { shown, api: countsFromApi(jobs, chart[0]) };
      if (total >= atLeast && JSON.stringify(last.shown) === JSON.stringify(last.api)) {
        assert.ok(await page.locator('#overview-finished canvas').count() > 0, 'uPlot drew the chart');
        assert.ok(await page.locator('#overview-table tbody tr').count() > 0, 'the table lists the minutes');
        return total;
      }
    }
    await page.waitForTimeout(500);
  }
  assert.fail(`the overview chart's data differs from the API's: ${JSON.stringify(last)}`);
}

// The result panel's bar: queue, run and visible parts with the result's timings.
export async function checkTimingBar(page, base, token, id) {
  const result = await getJson(base, token, `/v1/jobs/${id}/result`);
  await page.locator('#result-bar:not([hidden])').waitFor();
  const part = (name) => page.getAttribute(`#result-bar .part.${name}`, 'data-ms');
  assert.equal(Number(await part('queue')), result.timings.queue_ms);
  assert.equal(Number(await part('run')), result.timings.run_ms);
  assert.ok(Number.isInteger(result.timings.visible_ms), `the result says when it became visible: ${JSON.stringify(result.timings)}`);
  assert.equal(Number(await part('visible')), result.timings.visible_ms);
}

const show = (value) => (value === null || value === undefined ? '–'
  : Number.isInteger(value) ? String(value) : value.toFixed(3));

// The operator view shows the latest report's figures: compared at a moment when the
// page and the API hold the same report (one comes every second).
export async function checkLatestReport(page, base, adminToken) {
  let last;
  for (let tries = 0; tries < 40; tries += 1) {
    const report = await getJson(base, adminToken, '/v1/admin/observer/status');
    const at = await page.getAttribute('#operator', 'data-report-at');
    if (at === report.at) {
      const text = (id) => page.textContent(`#op-${id}`);
      const m = report.metrics;
      assert.equal(await text('lambda'), show(m.arrival_rate));
      assert.equal(await text('backlog'), show(m.backlog));
      assert.equal(await text('running'), show(m.running));
      assert.equal(await text('workers'), show(report.current_workers));
      assert.equal(await text('recommended'), show(report.desired_workers));
      assert.equal(await text('target'), show(report.params.target_response_ms / 1000));
      assert.equal(await text('action'), report.action);
      assert.equal(await text('reason'), report.reason);
      return report;
    }
    last = { page: at, api: report.at };
    await page.waitForTimeout(250);
  }
  assert.fail(`the page never showed the API's latest report: ${JSON.stringify(last)}`);
}

// After a load step (jobs submitted at once, more than the workers' slots), an `add`
// decision is listed with its reason and marked on the charts.
export async function checkDecisionAfterLoad(page, base, adminToken, repo, jobs) {
  const submit = () => fetch(`${base}/v1/jobs`, {
    method: 'POST',
    headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ repo, runtime: 'command', timeout_secs: 60, input: {} }),
  });
  const answers = await Promise.all(Array.from({ length: jobs }, submit));
  assert.ok(answers.every((a) => a.status === 202), 'the load step is accepted');
  const marked = page.locator('#op-decisions tbody tr[data-action="add"]').first();
  await marked.waitFor({ timeout: 60_000 });
  const reason = await marked.locator('td').nth(3).textContent();
  assert.ok(reason.length > 0, 'the decision gives its reason');
  assert.ok(await page.locator('#op-load canvas').count() > 0, 'uPlot drew the operator charts');
  return reason;
}
