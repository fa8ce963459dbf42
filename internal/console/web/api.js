// The console's calls to the gateway: every data call carries the admin's
// bearer token, kept in sessionStorage (this tab only).

const KEY = 'eventmart.console.token';

export const session = {
  get token() { return sessionStorage.getItem(KEY) || ''; },
  get email() { return sessionStorage.getItem(KEY + '.email') || ''; },
  save(token, email) { sessionStorage.setItem(KEY, token); sessionStorage.setItem(KEY + '.email', email); },
  clear() { sessionStorage.removeItem(KEY); sessionStorage.removeItem(KEY + '.email'); },
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

// api calls path (under the gateway) and returns the decoded JSON answer.
export async function api(path, { method = 'GET', body } = {}) {
  const headers = { 'Accept': 'application/json' };
  if (session.token) headers['Authorization'] = 'Bearer ' + session.token;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const resp = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (!resp.ok) throw await failure(resp);
  return resp.status === 204 ? null : resp.json();
}

// login exchanges credentials for a token.
export async function login(email, password) {
  const resp = await fetch('/api/v1/auth/token', {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ email, password }),
  });
  if (!resp.ok) throw await failure(resp);
  return (await resp.json()).token;
}

// stream reads the server-sent events of path with fetch() and a
// ReadableStream (EventSource cannot send the Authorization header) and
// calls onMessage(name, data) for each message until signal aborts or the
// server ends the stream.
export async function stream(path, signal, onMessage) {
  const resp = await fetch(path, { headers: { 'Authorization': 'Bearer ' + session.token, 'Accept': 'text/event-stream' }, signal });
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
