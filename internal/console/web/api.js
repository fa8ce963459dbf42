// The console's calls to the gateway: every data call carries the admin's
// bearer token, kept in sessionStorage (this tab only) with the session's
// refresh token, which gets a new access token when one expires.

const KEY = 'eventmart.console.token';

export const session = {
  get token() { return sessionStorage.getItem(KEY) || ''; },
  get email() { return sessionStorage.getItem(KEY + '.email') || ''; },
  get refresh() { return sessionStorage.getItem(KEY + '.refresh') || ''; },
  save(token, email, refresh) {
    sessionStorage.setItem(KEY, token); sessionStorage.setItem(KEY + '.email', email); sessionStorage.setItem(KEY + '.refresh', refresh || '');
  },
  clear() { for (const k of ['', '.email', '.refresh']) sessionStorage.removeItem(KEY + k); },
};

// ApiError is a failed call: the HTTP status and the error body's message.
export class ApiError extends Error {
  constructor(status, code, message) { super(message); this.status = status; this.code = code; }
}

// onAuthError is called when a call answers 401 (token expired or revoked).
export let onAuthError = () => {};
export function setAuthErrorHandler(fn) { onAuthError = fn; }

async function failure(resp) {
  let code = '', message = resp.statusText;
  try { const b = await resp.json(); code = b.error.code; message = b.error.message; } catch { /* not JSON */ }
  if (resp.status === 401) onAuthError();
  return new ApiError(resp.status, code, `${resp.status}: ${message}`);
}

// refreshed trades the session's refresh token for a new access token
// (POST /api/v1/auth/refresh) and reports whether it got one: false once
// the session has ended. Concurrent callers share one refresh.
let refreshing = null;
function refreshed() {
  if (!session.refresh) return Promise.resolve(false);
  refreshing ??= (async () => {
    try {
      const resp = await fetch('/api/v1/auth/refresh', {
        method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ refreshToken: session.refresh }),
      });
      if (!resp.ok) return false;
      session.save((await resp.json()).token, session.email, session.refresh);
      return true;
    } catch {
      return false;
    } finally {
      refreshing = null;
    }
  })();
  return refreshing;
}

// send fetches path with the access token init(token) builds the request
// with; an access token that has expired is refreshed once.
async function send(path, init) {
  const resp = await fetch(path, init(session.token));
  if (resp.status !== 401 || !(await refreshed())) return resp;
  return fetch(path, init(session.token));
}

// api calls path (under the gateway) and returns the decoded JSON answer.
export async function api(path, { method = 'GET', body } = {}) {
  const resp = await send(path, (token) => {
    const headers = { 'Accept': 'application/json' };
    if (token) headers['Authorization'] = 'Bearer ' + token;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    return { method, headers, body: body === undefined ? undefined : JSON.stringify(body) };
  });
  if (!resp.ok) throw await failure(resp);
  return resp.status === 204 ? null : resp.json();
}

// login exchanges credentials for the tokens of a new session
// ({token, refreshToken, …}).
export async function login(email, password) {
  const resp = await fetch('/api/v1/auth/token', {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ email, password }),
  });
  if (!resp.ok) throw await failure(resp);
  return resp.json();
}

// logout ends the session on the server (POST /api/v1/auth/logout); a
// failure is ignored: the tokens are forgotten here anyway.
export async function logout() {
  if (session.token) {
    try { await fetch('/api/v1/auth/logout', { method: 'POST', headers: { 'Authorization': 'Bearer ' + session.token } }); } catch { /* offline */ }
  }
  session.clear();
}

// stream reads the server-sent events of path with fetch() and a
// ReadableStream (EventSource cannot send the Authorization header) and
// calls onMessage(name, data) for each message until signal aborts or the
// server ends the stream.
export async function stream(path, signal, onMessage) {
  const resp = await send(path, (token) => ({ headers: { 'Authorization': 'Bearer ' + token, 'Accept': 'text/event-stream' }, signal }));
  if (!resp.ok) throw await failure(resp);
  const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += value;
    let end;
    while ((end = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, end);
      buf = buf.slice(end + 2);
      let name = 'message', data = '';
      for (const line of block.split('\n')) {
        if (line.startsWith('event: ')) name = line.slice(7);
        else if (line.startsWith('data: ')) data += line.slice(6);
      }
      if (data) onMessage(name, JSON.parse(data));
    }
  }
}
