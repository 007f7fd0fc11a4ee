// Pipelines in the web app: run the caller's functions in order (each step's
// output the next one's input, the invoke box's input to the first) and follow
// the run to its end, step by step.

import { api } from './api.js';
import { cell } from './functions.js';

const $ = (id) => document.getElementById(id);
const finished = (run) => !['queued', 'running'].includes(run.status);

export const pipelines = {
  start: (steps, input) => api('POST', '/v1/pipelines', { steps, input }),
  // answers as soon as the run ends, or after `wait` seconds
  get: (id, wait) => api('GET', `/v1/pipelines/${encodeURIComponent(id)}?wait=${wait}`),
};

// The function names of the pipeline form, in order.
export function pipelineSteps() {
  return $('pl-steps').value.split(/[\s,]+/).filter(Boolean);
}

export function showRun(run) {
  $('pipeline').hidden = false;
  $('pl-id').textContent = run.id;
  $('pl-status').textContent = run.status;
  $('pl-reason').textContent = run.reason || '';
  const body = $('pipeline-steps').querySelector('tbody');
  body.replaceChildren();
  for (const step of run.steps) {
    const tr = document.createElement('tr');
    tr.dataset.index = String(step.index);
    tr.append(
      cell(String(step.index)),
      cell(step.function, 'name'),
      cell(step.version == null ? '' : String(step.version)),
      cell(step.status, 'status'),
      cell(step.elapsed_ms == null ? '' : `${step.elapsed_ms} ms`),
      cell(step.job_id || '', 'job'),
    );
    body.append(tr);
  }
  $('pl-output').textContent = run.output === null || run.output === undefined ? '' : JSON.stringify(run.output, null, 2);
}

// Starts a run and shows it until it ends; the run at its end.
export async function runPipeline(steps, input) {
  let { body: run } = await pipelines.start(steps, input);
  showRun(run);
  while (!finished(run)) {
    ({ body: run } = await pipelines.get(run.id, 20));
    showRun(run);
  }
  return run;
}
