// gitfaas web app: sign in, submit jobs, follow them live, read results, cancel
// and erase. Every API error is shown with its problem details.

import { ApiError, followEvents, jobs, session } from './api.js';
import { beginSignIn, completeSignIn, isSignInRedirect } from './auth.js';
import { JobTable, hideResult, isFinished, showResult } from './jobs.js';
import { FunctionTable, StatePanel, deployment, functions, invocationInput } from './functions.js';
import { TriggerTable, scheduleRequest, triggers } from './triggers.js';
import { pipelineSteps, runPipeline } from './pipelines.js';
import { Overview } from './overview.js';
import { Operator } from './operator.js';

const $ = (id) => document.getElementById(id);

let config;
let events;
let table;
let functionTable;
let statePanel;
let triggerTable;
const overview = new Overview();
// polls the observer's report while signed in; stops (section hidden) for a non-admin
const operator = new Operator((error) => showError(error));
// The job whose result the page shows as soon as it finishes (the last one submitted).
let awaited;
// Jobs whose end the event stream brought lately: a quick job's end may arrive
// before the answer to its own submission does.
const endedLately = new Set();
// The job whose log the log panel shows live: its id, the next chunk index it
// lacks, the attempt of its last chunk, and chunks that came while it loaded.
const log = { id: undefined, next: 0, attempt: undefined, early: undefined };

function showError(error) {
  console.warn(error);
  $('error-title').textContent = error instanceof ApiError ? `${error.title} (${error.status}):` : 'Error:';
  $('error-detail').textContent = error instanceof ApiError ? error.detail : error.message || String(error);
  $('error').hidden = false;
  if (error instanceof ApiError && error.status === 401) signOut();
}

function clearError() {
  $('error').hidden = true;
}

// Runs an action, showing whatever it throws.
const guarded = (action) => async (...args) => {
  try {
    await action(...args);
  } catch (error) {
    showError(error);
  }
};

function showSignIn() {
  $('app').hidden = true;
  $('sign-out').hidden = true;
  $('live').hidden = true;
  $('who').textContent = '';
  $('signin').hidden = false;
  $('oidc').hidden = !config.client_id;
  $('issuer').textContent = config.issuer || '';
}

function claimsOf(token) {
  try {
    const payload = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(atob(payload));
  } catch {
    return {};
  }
}

// Whether the token carries the operator's role (`config.roles_claim` is a dotted path):
// only then does the page ask for the observer's reports. Without sign-in, everyone is.
function isAdmin(claims) {
  if (config.auth === 'none') return true;
  const roles = (config.roles_claim || 'roles').split('.').reduce((value, key) => value?.[key], claims);
  return Array.isArray(roles) ? roles.includes(config.admin_role) : roles === config.admin_role;
}

async function showApp() {
  $('signin').hidden = true;
  $('app').hidden = false;
  $('sign-out').hidden = config.auth === 'none';
  const claims = claimsOf(session.token());
  $('who').textContent = config.auth === 'none' ? 'no sign-in needed' : `signed in as ${claims.preferred_username || claims.sub || 'unknown'}`;
  events = followEvents(onEvent, (open) => {
    $('live').hidden = false;
    $('live').textContent = open ? 'live' : 'reconnecting…';
    $('live').classList.toggle('down', !open);
  });
  await reload();
  await overview.refresh();
  if (isAdmin(claims)) operator.start();
}

function signOut() {
  session.signOut();
  if (events) events.close();
  events = undefined;
  operator.stop();
  hideResult();
  statePanel?.hide();
  showSignIn();
}

async function reload() {
  const { body } = await jobs.list();
  table.load(body.jobs);
  await reloadFunctions();
}

async function reloadFunctions() {
  const { body } = await functions.list();
  functionTable.load(body.functions);
  if (statePanel.name !== undefined && !body.functions.some((f) => f.name === statePanel.name)) statePanel.hide();
  const listed = await triggers.list();
  triggerTable.load(listed.body.triggers);
}

async function schedule(event) {
  event.preventDefault();
  clearError();
  const { name, request } = scheduleRequest();
  await triggers.put(name, request);
  await reloadFunctions();
}

// pause, resume or remove: then the tables again
const triggerAction = (call) => async (name) => {
  clearError();
  await call(name);
  await reloadFunctions();
};

async function deploy(event) {
  event.preventDefault();
  clearError();
  $('deploy').disabled = true;
  try {
    const { name, request } = deployment();
    await functions.deploy(name, request);
    await reloadFunctions();
  } finally {
    $('deploy').disabled = false;
  }
}

// Invokes a function by name; its job shows in the jobs table, its result below.
async function invoke(name) {
  clearError();
  const { status, body } = await functions.invoke(name, invocationInput());
  await reload();
  if (status === 200) showResult(body);
  else awaitResult(body.id);
}

// Shows the job's result once it has finished: now, if its end came already.
function awaitResult(id) {
  if (endedLately.has(id)) {
    awaited = undefined;
    guarded(viewResult)(id);
  } else {
    awaited = id;
  }
}

async function rollback(name, version) {
  clearError();
  await functions.rollback(name, version);
  await reloadFunctions();
}

async function removeFunction(name) {
  clearError();
  await functions.remove(name);
  statePanel.hide(name);
  await reloadFunctions();
}

// Shows the function's state: its keys and values.
async function showState(name) {
  clearError();
  const { body } = await functions.state(name);
  statePanel.show(body);
}

// Deletes one key, or (no key) every key, of the function's state; then shows it again.
async function deleteState(name, key) {
  clearError();
  if (key === undefined) await functions.clearState(name);
  else await functions.deleteKey(name, key);
  await showState(name);
}

// Runs the pipeline of the form with the invoke box's input; its steps' jobs show
// in the jobs table as they come.
async function startPipeline(event) {
  event.preventDefault();
  clearError();
  $('run-pipeline').disabled = true;
  try {
    await runPipeline(pipelineSteps(), invocationInput());
  } finally {
    $('run-pipeline').disabled = false;
    await reload();
  }
}

async function viewResult(id) {
  clearError();
  const { body } = await jobs.result(id);
  showResult(body);
}

// Shows the job's log so far, then adds its chunks as the websocket brings them.
async function showLog(id) {
  clearError();
  Object.assign(log, { id, next: 0, attempt: undefined, early: [] });
  $('log').hidden = false;
  $('log-id').textContent = id;
  $('log-text').textContent = '';
  const { text, chunks } = await jobs.logs(id);
  if (log.id !== id) return;
  $('log-text').textContent = text;
  const early = log.early;
  Object.assign(log, { next: chunks, early: undefined });
  early.forEach(addChunk);
}

function addChunk(chunk) {
  if (chunk.id !== log.id || chunk.index < 0) return;
  if (log.early) {
    log.early.push(chunk);
    return;
  }
  if (chunk.index < log.next) return;
  let text = chunk.text;
  if (log.attempt !== undefined && chunk.attempt !== log.attempt) text = `[gitfaas: attempt ${chunk.attempt}]\n${text}`;
  if (chunk.truncated) text += '\n[gitfaas: the log reached its size limit; the rest was dropped]\n';
  $('log-text').textContent += text;
  Object.assign(log, { next: chunk.index + 1, attempt: chunk.attempt });
}

function onEvent(event) {
  if (event.kind === 'log') {
    addChunk(event);
    return;
  }
  if (!table.apply(event)) {
    // a job this page has not listed yet (submitted elsewhere, or just now)
    guarded(reload)();
  }
  if (isFinished(event.status)) {
    overview.soon(showError);
    endedLately.add(event.id);
    if (endedLately.size > 200) endedLately.delete(endedLately.values().next().value);
  }
  if (event.id === awaited && isFinished(event.status)) {
    awaited = undefined;
    guarded(viewResult)(event.id);
  }
}

async function cancel(id) {
  clearError();
  const { status, body } = await jobs.cancel(id);
  table.update(body);
  // 200: it was queued and is cancelled now; 202: its executor is killing it and the
  // event stream brings the `cancelled` result
  if (status === 200) table.apply({ id, status: body.status, at: new Date().toISOString() });
}

async function erase(id) {
  clearError();
  await jobs.erase(id);
  table.remove(id);
  hideResult(id);
  if (log.id === id) {
    log.id = undefined;
    $('log').hidden = true;
  }
}

function submission() {
  const request = { repo: $('repo').value.trim() };
  const gitRef = $('ref').value.trim();
  if (gitRef) request.ref = gitRef;
  if ($('runtime').value) request.runtime = $('runtime').value;
  const timeout = $('timeout').value.trim();
  if (timeout) request.timeout_secs = Number(timeout);
  if ($('delivery').value) request.delivery = $('delivery').value;
  const input = $('input').value.trim();
  try {
    request.input = input ? JSON.parse(input) : {};
  } catch (error) {
    throw new Error(`the input is not JSON: ${error.message}`);
  }
  return request;
}

async function submit(event) {
  event.preventDefault();
  clearError();
  $('submit').disabled = true;
  try {
    const { body } = await jobs.submit(submission());
    hideResult();
    awaitResult(body.id);
    // the log panel first: a quick job may end (and show its result) while the tables reload
    await showLog(body.id);
    await reload();
  } finally {
    $('submit').disabled = false;
  }
}

function useToken(event) {
  event.preventDefault();
  clearError();
  const token = $('token').value.trim().replace(/^bearer\s+/i, '');
  if (!token) return;
  $('token').value = '';
  session.signIn(token);
  return showApp();
}

async function start() {
  const response = await fetch('/app/config.json', { cache: 'no-store' });
  if (!response.ok) throw new Error(`cannot load the page's configuration (${response.status})`);
  config = await response.json();
  for (const runtime of config.runtimes || []) {
    const option = document.createElement('option');
    option.value = runtime;
    option.textContent = runtime;
    $('runtime').append(option);
    $('fn-runtime').append(option.cloneNode(true));
  }
  table = new JobTable({
    view: guarded(viewResult), log: guarded(showLog), cancel: guarded(cancel), erase: guarded(erase),
  });
  $('error-close').addEventListener('click', clearError);
  $('token-form').addEventListener('submit', guarded(useToken));
  $('oidc-sign-in').addEventListener('click', guarded(() => beginSignIn(config)));
  $('sign-out').addEventListener('click', signOut);
  $('submit-form').addEventListener('submit', guarded(submit));
  functionTable = new FunctionTable({
    invoke: guarded(invoke), rollback: guarded(rollback), remove: guarded(removeFunction), state: guarded(showState),
  });
  statePanel = new StatePanel({ remove: guarded(deleteState) });
  $('state-refresh').addEventListener('click', guarded(() => showState(statePanel.name)));
  $('state-clear').addEventListener('click', guarded(() => deleteState(statePanel.name)));
  $('deploy-form').addEventListener('submit', guarded(deploy));
  triggerTable = new TriggerTable({
    pause: guarded(triggerAction(triggers.pause)),
    resume: guarded(triggerAction(triggers.resume)),
    remove: guarded(triggerAction(triggers.remove)),
  });
  $('schedule-form').addEventListener('submit', guarded(schedule));
  $('pipeline-form').addEventListener('submit', guarded(startPipeline));
  $('refresh').addEventListener('click', guarded(reload));

  if (config.auth === 'none') session.signIn('none');
  if (isSignInRedirect()) {
    try {
      session.signIn(await completeSignIn(config));
    } catch (error) {
      showSignIn();
      throw error;
    }
  }
  if (session.token()) await showApp();
  else showSignIn();
}

guarded(start)();
