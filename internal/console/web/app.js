// The console's shell: log-in, tabs (the URL hash: #stream, #flow=<id>, …).
import { api, login, logout, session, setAuthErrorHandler } from './api.js';
import { $ } from './util.js';
import * as streamView from './stream.js';
import * as flowView from './flow.js';
import * as chartsView from './charts.js';
import * as messagesView from './messages.js';
import * as topologyView from './topology.js';
import * as topicsView from './topics.js';
import * as sagasView from './sagas.js';
import * as dlqView from './dlq.js';
import * as webhooksView from './webhooks.js';
import * as historyView from './history.js';
import * as batchView from './batch.js';
import * as analyticsView from './analytics.js';
import * as regionView from './region.js';

const views = { stream: streamView, flow: flowView, charts: chartsView, messages: messagesView, topology: topologyView, topics: topicsView, sagas: sagasView, dlq: dlqView, webhooks: webhooksView, history: historyView, batch: batchView, analytics: analyticsView, region: regionView };
let current = null;

function showLogin(message = '') {
  for (const v of document.querySelectorAll('.view')) v.hidden = true;
  if (current) views[current].leave?.();
  current = null;
  $('#tabs').hidden = $('#who').hidden = true;
  $('#login').hidden = false;
  $('#login-error').textContent = message;
}

function route() {
  if (!session.token) return showLogin();
  $('#login').hidden = true;
  $('#tabs').hidden = $('#who').hidden = false;
  $('#who-email').textContent = session.email;
  const [tab, arg] = (location.hash.slice(1) || 'stream').split('=');
  const name = views[tab] ? tab : 'stream';
  if (current && current !== name) views[current].leave?.();
  for (const [n] of Object.entries(views)) $('#view-' + n).hidden = n !== name;
  for (const a of document.querySelectorAll('#tabs a')) a.classList.toggle('active', a.dataset.tab === name);
  current = name;
  views[name].enter(arg ? decodeURIComponent(arg) : '');
}

$('#login-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const f = new FormData(e.target);
  try {
    const t = await login(f.get('email'), f.get('password'));
    session.save(t.token, f.get('email'), t.refreshToken);
    // Only admins may use the console: check before showing it.
    try {
      await api('/api/v1/admin/topology?window=1s');
    } catch (err) {
      session.clear();
      return showLogin(err.status === 403 ? 'This account is not an administrator.' : err.message);
    }
    e.target.reset();
    route();
  } catch (err) {
    $('#login-error').textContent = err.message;
  }
});

$('#logout').addEventListener('click', async () => { await logout(); showLogin(); });
setAuthErrorHandler(() => { session.clear(); showLogin('Your session expired: log in again.'); });
window.addEventListener('hashchange', route);
for (const v of Object.values(views)) v.init?.();
route();
