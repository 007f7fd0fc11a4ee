// Calls to the /v1 API with the signed-in user's bearer token. Every failure
// becomes an ApiError carrying the problem+json details the API answered with.

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.title = problem.title || `HTTP ${status}`;
    this.detail = problem.detail || '';
  }
}

const TOKEN_KEY = 'gitfaas.token';

export const session = {
  token: () => sessionStorage.getItem(TOKEN_KEY),
  signIn: (token) => sessionStorage.setItem(TOKEN_KEY, token),
  signOut: () => sessionStorage.removeItem(TOKEN_KEY),
};

async function problemOf(response) {
  const text = await response.text();
  try {
    const body = JSON.parse(text);
    if (body && typeof body === 'object') return body;
  } catch {
    // not JSON: a proxy's page or an empty body
  }
  return { title: `HTTP ${response.status} ${response.statusText}`, detail: text.slice(0, 300) };
}

// `fetch` of an API path; resolves to `{ status, body }` for 2xx, throws ApiError otherwise.
export async function api(method, path, body) {
  const headers = { authorization: `Bearer ${session.token()}` };
  const init = { method, headers, cache: 'no-store' };
  if (body !== undefined) {
    headers['content-type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    throw new ApiError(0, { title: 'Network error', detail: String(error.message || error) });
  }
  if (!response.ok) throw new ApiError(response.status, await problemOf(response));
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
}

// The text of an API path (a job's log) and how many chunks it holds.
async function text(path) {
  let response;
  try {
    response = await fetch(path, { headers: { authorization: `Bearer ${session.token()}` }, cache: 'no-store' });
  } catch (error) {
    throw new ApiError(0, { title: 'Network error', detail: String(error.message || error) });
  }
  if (!response.ok) throw new ApiError(response.status, await problemOf(response));
  return { text: await response.text(), chunks: Number(response.headers.get('x-log-chunks') || 0) };
}

export const jobs = {
  logs: (id) => text(`/v1/jobs/${encodeURIComponent(id)}/logs`),
  list: () => api('GET', '/v1/jobs?limit=100'),
  // a page of the list, older than job `before` (a page's `next`) when given
  page: (before) => api('GET', `/v1/jobs?limit=100${before ? `&before=${encodeURIComponent(before)}` : ''}`),
  submit: (request) => api('POST', '/v1/jobs', request),
  result: (id) => api('GET', `/v1/jobs/${encodeURIComponent(id)}/result`),
  cancel: (id) => api('POST', `/v1/jobs/${encodeURIComponent(id)}/cancel`),
  erase: (id) => api('DELETE', `/v1/jobs/${encodeURIComponent(id)}`),
};

// Operator routes (admin role).
export const admin = {
  report: () => api('GET', '/v1/admin/observer/status'),
  // the reports the frontend keeps, oldest first: all of them, or those after `since`
  reports: (since) => api('GET', `/v1/admin/observer/reports${since ? `?since=${encodeURIComponent(since)}` : ''}`),
  setParams: (params) => api('PUT', '/v1/admin/observer/config', params),
  // the websocket of the observer's reports: those kept after `since`, then each as it comes
  reportStream: (since) => {
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const after = since ? `&since=${encodeURIComponent(since)}` : '';
    const token = encodeURIComponent(session.token());
    return new WebSocket(`${scheme}//${location.host}/v1/admin/observer/reports/stream?access_token=${token}${after}`);
  },
};

// The websocket of the caller's job transitions and log chunks; reconnects after a drop
// (with a growing delay) until `close()` is called.
export function followEvents(onEvent, onState) {
  let socket;
  let closed = false;
  let delay = 500;
  const open = () => {
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const url = `${scheme}//${location.host}/v1/jobs/events?logs=true&access_token=${encodeURIComponent(session.token())}`;
    socket = new WebSocket(url);
    socket.addEventListener('open', () => {
      delay = 500;
      onState(true);
    });
    socket.addEventListener('message', (message) => {
      try {
        onEvent(JSON.parse(message.data));
      } catch (error) {
        console.warn('unreadable event', error);
      }
    });
    socket.addEventListener('close', () => {
      onState(false);
      if (closed) return;
      setTimeout(open, delay);
      delay = Math.min(delay * 2, 30000);
    });
  };
  open();
  return {
    close() {
      closed = true;
      socket.close();
    },
  };
}
