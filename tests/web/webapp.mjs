// Drives the frontend's web app in a real browser (Debian's chromium through
// playwright-core) and asserts what a user sees. Run by tests/tests/webapp.rs:
//
//   GITFAAS_WEB_URL        the frontend, e.g. http://127.0.0.1:8080
//   GITFAAS_WEB_TOKEN      an access token of alice
//   GITFAAS_WEB_ISSUER     the issuer the frontend trusts (Keycloak's realm), whose login page
//                          the PKCE sign-in goes through
//   GITFAAS_WEB_CLIENT_ID  the web client id the frontend is configured with
//   GITFAAS_WEB_RESOURCE   its resource indicator, if it has one (Keycloak: none)
//   GITFAAS_WEB_USER, GITFAAS_WEB_PASSWORD  the user who signs in there (alice)
//   GITFAAS_WEB_PYTHON_REPO  a python function: returns {"greeting": "hello, " + name}, prints a line
//   GITFAAS_WEB_SLOW_REPO    a command function that sleeps 60 s
//   GITFAAS_WEB_ADMIN_TOKEN  an access token of a user with the admin role
//   GITFAAS_WEB_NAP_REPO     a command function that sleeps 5 s (the operator view's load step)
//   GITFAAS_WEB_ARTIFACTS    where screenshots go (optional; outside the repository)
//   CHROMIUM               the browser (default /usr/bin/chromium)
//
// Prints `ok - <step>` per step; exits non-zero at the first failure.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { chromium } from 'playwright-core';
import { launchArgs, signIn } from './keycloak.mjs';
import { checkDecisionAfterLoad, checkLatestReport, checkOverview, checkTimingBar, screenshot } from './charts.mjs';

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const base = env('GITFAAS_WEB_URL').replace(/\/$/, '');
const token = env('GITFAAS_WEB_TOKEN');
const issuer = env('GITFAAS_WEB_ISSUER').replace(/\/$/, '');
const clientId = env('GITFAAS_WEB_CLIENT_ID');
const resource = process.env.GITFAAS_WEB_RESOURCE || undefined;
const user = env('GITFAAS_WEB_USER');
const password = env('GITFAAS_WEB_PASSWORD');
const pythonRepo = env('GITFAAS_WEB_PYTHON_REPO');
const slowRepo = env('GITFAAS_WEB_SLOW_REPO');
const adminToken = env('GITFAAS_WEB_ADMIN_TOKEN');
const napRepo = env('GITFAAS_WEB_NAP_REPO');
const origin = new URL(base).origin;
const issuerOrigin = new URL(issuer).origin;

const ok = (step) => console.log(`ok - ${step}`);
const watchdog = setTimeout(() => {
  console.error('not ok - the browser test did not finish in 260 s');
  process.exit(2);
}, 200_000);

// Everything a page asks for, and what goes wrong in it.
function record(page) {
  const seen = { requests: [], sockets: [], frames: [], errors: [], navigations: 0 };
  page.on('request', (request) => seen.requests.push(request.url()));
  page.on('websocket', (socket) => {
    seen.sockets.push(socket.url());
    socket.on('framereceived', (frame) => seen.frames.push(String(frame.payload)));
  });
  page.on('pageerror', (error) => seen.errors.push(`page error: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error') seen.errors.push(`console: ${message.text()}`);
  });
  page.on('framenavigated', (frame) => {
    if (frame === page.mainFrame()) seen.navigations += 1;
  });
  return seen;
}

async function checkHeaders() {
  const page = await fetch(`${base}/`);
  assert.equal(page.status, 200);
  assert.match(page.headers.get('content-type'), /^text\/html/);
  const csp = page.headers.get('content-security-policy') ?? '';
  assert.match(csp, /default-src 'none'/);
  assert.match(csp, /script-src 'self';/);
  assert.ok(csp.includes(`connect-src 'self' ${issuerOrigin};`), csp);
  assert.ok(!csp.includes('unsafe'), csp);
  const script = await fetch(`${base}/app/app.js`);
  assert.match(script.headers.get('content-type'), /^text\/javascript/);
  const missing = await fetch(`${base}/app/nothing.js`);
  assert.equal(missing.status, 404);
  assert.match(missing.headers.get('content-type'), /^application\/problem\+json/);
  const config = await (await fetch(`${base}/app/config.json`)).json();
  assert.equal(config.client_id, clientId);
  assert.equal(config.issuer, issuer);
  ok('page, assets and config.json are served without a token, with a strict policy');
}

const row = (page, id, status) =>
  page.locator(`#jobs tbody tr[data-id="${id}"]${status ? `[data-status="${status}"]` : ''}`);
const newestId = (page) => page.locator('#jobs tbody tr').first().getAttribute('data-id');

async function submit(page, { repo, runtime = '', input = '{}', timeout = '' }) {
  await page.fill('#repo', repo);
  await page.selectOption('#runtime', runtime);
  await page.fill('#input', input);
  await page.fill('#timeout', timeout);
  const before = await page.locator('#jobs tbody tr').count();
  await page.click('#submit');
  return before;
}

async function submitAndGetId(page, job) {
  const before = await submit(page, job);
  await page.waitForFunction((n) => document.querySelectorAll('#jobs tbody tr').length > n, before);
  return newestId(page);
}

async function signInWithToken(page, seen) {
  await page.goto(`${base}/`);
  await page.locator('#signin').waitFor();
  assert.ok(await page.locator('#oidc-sign-in').isVisible(), 'the provider sign-in is offered');
  await page.fill('#token', token);
  await page.click('#token-form button[type=submit]');
  await page.locator('#app').waitFor();
  assert.match(await page.textContent('#who'), /Alice|alice/);
  assert.equal(await page.evaluate(() => sessionStorage.getItem('gitfaas.token')), token);
  assert.equal(await page.evaluate(() => localStorage.length), 0, 'nothing in local storage');
  await page.locator('#live:not(.down)').waitFor();
  assert.equal(seen.sockets.length, 1, 'one event stream');
  ok('signed in with a pasted token; the event stream is open');
}

async function runPythonJob(page, seen) {
  const navigations = seen.navigations;
  const id = await submitAndGetId(page, { repo: pythonRepo, runtime: 'python', input: '{"name": "web"}', timeout: '30' });
  await row(page, id, 'succeeded').waitFor({ timeout: 90_000 });
  assert.equal(seen.navigations, navigations, 'the page was not reloaded');
  assert.ok(seen.frames.some((f) => f.includes(id) && f.includes('"succeeded"')), 'succeeded came over the websocket');
  assert.equal(await row(page, id).locator('.attempt').textContent(), '1');
  await page.locator(`#result[data-id="${id}"]`).waitFor();
  assert.equal(await page.textContent('#result-status'), 'succeeded');
  assert.deepEqual(JSON.parse(await page.textContent('#result-output')), { greeting: 'hello, web' });
  assert.match(await page.textContent('#result-stderr'), /hello from the web test/);
  assert.match(await page.textContent('#result-timings'), /total \d+ ms/);
  assert.equal(await page.textContent('#log-id'), id, 'the log panel follows the job just submitted');
  await page.waitForFunction(() => /hello from the web test/.test(document.getElementById('log-text').textContent));
  assert.ok(seen.frames.some((f) => f.includes(id) && f.includes('"kind":"log"')), 'its log came over the websocket');
  ok(`python job ${id} went to succeeded live, its log and output are shown`);
  return id;
}

// Deploys the python function by name through the form, invokes it, deletes it.
async function deployAndInvokeFunction(page) {
  const name = `web-${Date.now()}`;
  await page.fill('#fn-name', name);
  await page.fill('#fn-repo', pythonRepo);
  await page.selectOption('#fn-runtime', 'python');
  await page.click('#deploy');
  const fnRow = page.locator(`#functions tr[data-name="${name}"]`);
  await fnRow.waitFor({ timeout: 90_000 });
  assert.equal(await fnRow.locator('.version').textContent(), '1');
  assert.match(await fnRow.locator('.commit').textContent(), /^[0-9a-f]{12}$/);
  await page.fill('#fn-input', '{"name": "by name"}');
  await fnRow.locator('button.invoke').click();
  await page.waitForFunction(() => /hello, by name/.test(document.getElementById('result-output').textContent),
    null, { timeout: 90_000 });
  assert.equal(await page.textContent('#result-status'), 'succeeded');
  // a one-step pipeline of it, through the pipeline form, with the same input box
  await page.fill('#fn-input', '{"name": "a pipeline"}');
  await page.fill('#pl-steps', name);
  await page.click('#run-pipeline');
  await page.waitForFunction(() => document.getElementById('pl-status').textContent === 'succeeded',
    null, { timeout: 90_000 });
  assert.match(await page.textContent('#pl-output'), /hello, a pipeline/);
  assert.equal(await page.textContent('#pipeline-steps tr[data-index="1"] .status'), 'succeeded');
  await scheduleIt(page, name);
  await fnRow.locator('button.delete').click();
  await fnRow.waitFor({ state: 'detached' });
  assert.ok(await page.locator('#error').isHidden());
  ok(`function ${name} deployed at version 1, invoked by name, run as a pipeline, deleted`);
}

// A nightly schedule of the function through the form: listed with its next tick
// at 03:00 in its zone, paused, resumed, deleted.
async function scheduleIt(page, fn) {
  const name = `${fn}-nightly`;
  await page.fill('#trg-name', name);
  await page.fill('#trg-function', fn);
  await page.fill('#trg-cron', '0 3 * * *');
  await page.fill('#trg-zone', 'UTC');
  await page.click('#schedule');
  const trgRow = page.locator(`#triggers tr[data-name="${name}"]`);
  await trgRow.waitFor({ timeout: 30_000 });
  assert.equal(await trgRow.locator('.state').textContent(), 'active');
  const listed = await (await fetch(`${base}/v1/triggers/${name}`, { headers: { authorization: `Bearer ${token}` } })).json();
  assert.match(listed.next_tick, /T03:00:00Z$/, `the next tick: ${JSON.stringify(listed)}`);
  await trgRow.locator('button.pause').click();
  await page.locator(`#triggers tr[data-name="${name}"] .state:text("paused")`).waitFor();
  await trgRow.locator('button.resume').click();
  await page.locator(`#triggers tr[data-name="${name}"] .state:text("active")`).waitFor();
  await trgRow.locator('button.delete').click();
  await trgRow.waitFor({ state: 'detached' });
  assert.ok(await page.locator('#error').isHidden());
  ok(`schedule ${name} created from the page, paused, resumed, deleted`);
}

async function cancelSlowJob(page, seen) {
  const id = await submitAndGetId(page, { repo: slowRepo, runtime: 'command', timeout: '120' });
  await row(page, id, 'running').waitFor({ timeout: 60_000 });
  const started = Date.now();
  await row(page, id).locator('button.cancel').click();
  await row(page, id, 'cancelled').waitFor({ timeout: 40_000 });
  assert.ok(Date.now() - started < 40_000);
  assert.ok(seen.frames.some((f) => f.includes(id) && f.includes('"cancelled"')), 'cancelled came over the websocket');
  assert.ok(await page.locator('#error').isHidden(), 'no error shown');
  await row(page, id).locator('button.view').click();
  await page.locator(`#result[data-id="${id}"]`).waitFor();
  assert.equal(await page.textContent('#result-status'), 'cancelled');
  ok(`running command job ${id} was cancelled from the page`);
}

async function showsProblems(page) {
  const body = { repo: 'ftp://x', input: {} };
  const answer = await fetch(`${base}/v1/jobs`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  assert.equal(answer.status, 400);
  const problem = await answer.json();
  assert.ok(problem.detail);
  await submit(page, { repo: body.repo });
  await page.locator('#error').waitFor();
  assert.equal(await page.textContent('#error-detail'), problem.detail);
  assert.match(await page.textContent('#error-title'), /400/);
  ok(`an invalid repository shows the problem detail: ${problem.detail}`);
  await page.click('#error-close');
}

async function erase(page, id) {
  await row(page, id).locator('button.erase').click();
  await row(page, id).waitFor({ state: 'detached' });
  const answer = await fetch(`${base}/v1/jobs/${id}`, { headers: { authorization: `Bearer ${token}` } });
  assert.equal(answer.status, 404);
  assert.ok(await page.locator('#error').isHidden());
  ok(`finished job ${id} was erased from the page`);
}

function onlyFrontend(seen, allowed) {
  const foreign = [...seen.requests, ...seen.sockets].filter((url) => {
    const u = new URL(url);
    const home = u.protocol.startsWith('ws') ? `http://${u.host}` : u.origin;
    return !allowed.includes(home) && u.protocol !== 'data:';
  });
  assert.deepEqual(foreign, [], 'requests to other hosts');
  assert.ok(seen.requests.some((url) => url.startsWith(`${base}/v1/jobs`)));
  assert.deepEqual(seen.errors, [], 'no script error and no policy violation');
}

async function tokenSession(browser) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const seen = record(page);
  await signInWithToken(page, seen);
  const finished = await runPythonJob(page, seen);
  await checkTimingBar(page, base, token, finished);
  const total = await checkOverview(page, base, token, { atLeast: 1 });
  assert.ok(await page.locator('#operator').isHidden(), 'no operator view without the admin role');
  await screenshot(page, 'job-and-overview');
  ok(`the overview chart holds what the API lists (${total} finished in the last hour); the job's timing bar its timings`);
  await deployAndInvokeFunction(page);
  await cancelSlowJob(page, seen);
  await showsProblems(page);
  seen.errors = seen.errors.filter((e) => !/status of 400/.test(e)); // the browser logs the refused submit
  await erase(page, finished);
  onlyFrontend(seen, [origin]);
  ok(`all ${seen.requests.length} requests and the websocket went to the frontend only`);
  await page.click('#sign-out');
  await page.locator('#signin').waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.length), 0);
  ok('signing out forgets the token');
  await context.close();
}

const base64url = (bytes) => Buffer.from(bytes).toString('base64url');

// What the page sends to the provider: the authorization request and the code exchange.
function recordFlow(page) {
  const flow = {};
  page.on('request', (request) => {
    const url = new URL(request.url());
    if (!url.href.startsWith(`${issuer}/protocol/openid-connect/`)) return;
    if (url.pathname.endsWith('/auth') && !flow.authorize) flow.authorize = Object.fromEntries(url.searchParams);
    if (url.pathname.endsWith('/token') && request.method() === 'POST') {
      flow.token = Object.fromEntries(new URLSearchParams(request.postData()));
    }
  });
  return flow;
}

// Sign-in through the provider's own login page (Keycloak's), then a job run as that user.
async function providerSession(browser) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const seen = record(page);
  const flow = recordFlow(page);
  await page.goto(`${base}/`);
  await page.click('#oidc-sign-in');
  await page.waitForURL((url) => url.origin === issuerOrigin);
  await signIn(page, user, password);
  await page.locator('#app').waitFor();
  const a = flow.authorize;
  assert.equal(a.response_type, 'code');
  assert.equal(a.client_id, clientId);
  assert.equal(a.redirect_uri, `${base}/`);
  assert.equal(a.code_challenge_method, 'S256');
  assert.equal(a.resource, resource);
  assert.match(a.scope, /openid/);
  const t = flow.token;
  assert.equal(t.grant_type, 'authorization_code');
  assert.ok(t.code, 'a code from the provider');
  assert.equal(t.client_id, clientId);
  assert.equal(t.redirect_uri, a.redirect_uri);
  assert.equal(base64url(createHash('sha256').update(t.code_verifier).digest()), a.code_challenge, 'verifier matches');
  assert.equal(new URL(page.url()).search, '', 'the code is gone from the address bar');
  assert.match(await page.textContent('#who'), /Alice|alice/);
  const own = await page.evaluate(() => sessionStorage.getItem('gitfaas.token'));
  const claims = JSON.parse(Buffer.from(own.split('.')[1], 'base64url'));
  assert.equal(claims.azp, clientId, 'a token issued to the web client');
  assert.equal(claims.iss, issuer);
  ok(`signed in through the provider's login page with the authorization code flow and PKCE (S256) as ${user}`);
  await page.locator('#live:not(.down)').waitFor();
  const id = await runPythonJob(page, seen);
  onlyFrontend(seen, [origin, issuerOrigin]);
  ok(`after that sign-in, job ${id} ran; every request went to the frontend or the provider`);
  await context.close();
}

// As an admin: the operator view follows the observer's reports, and marks the
// decision a load step causes.
async function operatorSession(browser) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 1600 } });
  const page = await context.newPage();
  const seen = record(page);
  await page.goto(`${base}/`);
  await page.fill('#token', adminToken);
  await page.click('#token-form button[type=submit]');
  await page.locator('#operator[data-report-at]').waitFor({ timeout: 30_000 });
  await checkLatestReport(page, base, adminToken);
  ok('the operator view shows the latest observer report');
  const reason = await checkDecisionAfterLoad(page, base, adminToken, napRepo, 8);
  const report = await checkLatestReport(page, base, adminToken);
  await screenshot(page, 'operator');
  ok(`after a load step an add decision is marked (${reason}); the view follows the reports (${report.action})`);
  // the reports came over the report stream, not by polling
  assert.ok(seen.sockets.some((url) => url.includes('/v1/admin/observer/reports/stream')), 'the report stream was opened');
  assert.ok(seen.frames.some((f) => f.includes(`"at":"${report.at}"`)), 'the latest report came over it');
  const polls = seen.requests.filter((url) => url.includes('/v1/admin/observer/reports?') || url.endsWith('/v1/admin/observer/reports'));
  assert.ok(polls.length <= 2, `the kept reports were fetched once, not polled: ${polls.length}`);
  ok('the operator view follows the observer over its report stream');
  onlyFrontend(seen, [origin]);
  await context.close();
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: launchArgs,
});
try {
  await checkHeaders();
  await tokenSession(browser);
  await providerSession(browser);
  await operatorSession(browser);
  console.log('web app: all steps passed');
} catch (error) {
  console.error(`not ok - ${error.stack || error}`);
  process.exitCode = 1;
} finally {
  await browser.close();
  clearTimeout(watchdog);
}
