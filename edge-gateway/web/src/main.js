// The edgeshell web client: sign in, pick the nearest healthy region, start or reopen a session, and
// keep a live terminal through network drops. Views: sign-in, home (regions and sessions), terminal.

import '@xterm/xterm/css/xterm.css';
import './style.css';
import init from '../build/client/client.js';
import { api, ApiError } from './api.js';
import { createSignIn, displayName, sessionLink } from './auth.js';
import { ExtraKeys, followVisualViewport } from './keys.js';
import { Countdown } from './lifetime.js';
import { probeAll } from './regions.js';
import { SecretsCard } from './secrets.js';
import { TemplatePicker } from './templates.js';
import { TerminalSession } from './session.js';
import { FONT_SIZES, MAX_SCROLLBACK, TerminalView, fontReady, loadPrefs, savePrefs } from './terminal.js';

const $ = (id) => document.getElementById(id);
const STATUS_TEXT = {
  connecting: 'Connecting',
  live: 'Live',
  resuming: 'Reconnecting',
  'runner-away': 'Runner reconnecting',
  'runner-lost': 'Runner lost',
  ended: 'Ended',
};

// What this tab keeps across a reload (sessionStorage is per tab): the seat's resume ticket, the
// offset of the output on screen and that screen, so a reload continues at the exact byte.
const RESUME_KEY = 'edgeshell.resume';
// Lines of history kept with the screen across a reload.
const KEPT_SCROLLBACK = 1000;

const app = {
  config: null,
  user: null,
  rtts: {},
  term: null,
  fit: null,
  view: null,
  prefs: loadPrefs(),
  current: null,
  // Figures the end-to-end tests read; also handy in the console.
  metrics: { sessionStartMs: null, statuses: [] },
};
window.edgeshell = app;

/** Asks for a second click before `action` (ending a session cannot be undone). */
function confirmClick(button, action) {
  // The label is the page's own markup (a part of it hides on phones): kept and put back as it was.
  if (button.dataset.confirm === '1') {
    clearTimeout(button.confirmTimer);
    button.dataset.confirm = '';
    button.innerHTML = button.dataset.label;
    return action();
  }
  button.dataset.label = button.innerHTML;
  button.dataset.confirm = '1';
  button.textContent = 'Click again to end';
  button.confirmTimer = setTimeout(() => {
    button.dataset.confirm = '';
    button.innerHTML = button.dataset.label;
  }, 4000);
  return undefined;
}

/** Keeps this tab's resume point (called periodically and when the page is hidden or unloads). */
function keepResumePoint() {
  const s = app.current;
  if (!s || !app.serialize) return;
  // Serializing the screen costs; nothing to do when neither the seat, the output shown nor the size moved.
  const key = [s.session.session_id, s.link.resumeTicket, s.shown, app.term.cols, app.term.rows].join(' ');
  if (key === app.keptKey) return;
  const point = s.resumePoint(() => app.serialize.serialize({ scrollback: KEPT_SCROLLBACK }));
  if (!point) return; // still parsing output: the last kept point stays, and still matches its screen
  try {
    sessionStorage.setItem(RESUME_KEY, JSON.stringify({ session_id: s.session.session_id, ...point }));
    app.keptKey = key;
  } catch {
    // Storage full or disabled: a reload then attaches afresh.
  }
}

function keptResumePoint(sessionId) {
  try {
    const kept = JSON.parse(sessionStorage.getItem(RESUME_KEY) || 'null');
    return kept && kept.session_id === sessionId && kept.ticket ? kept : null;
  } catch {
    return null;
  }
}

function show(view) {
  for (const id of ['signin-view', 'home-view', 'terminal-view']) $(id).hidden = id !== view;
  document.body.dataset.view = view;
}

function toast(message, kind = 'error') {
  const t = $('toast');
  t.textContent = message;
  t.dataset.kind = kind;
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.hidden = true; }, 6000);
}

function explainApiError(e) {
  if (!(e instanceof ApiError)) return e.message;
  if (e.status === 401) {
    if (app.auth) app.auth.signOut().catch(() => {});
    return 'Your sign-in expired; sign in again.';
  }
  if (e.status === 429 && e.retryAfter) return `${e.message} Try again in ${e.retryAfter} s.`;
  return e.message;
}

/** A current ID token (renewed silently when it is about to expire), or the sign-in view. */
async function idToken() {
  app.user = await app.auth.user().catch(() => null);
  if (!app.user) {
    showSignIn('Your sign-in expired; sign in again.');
    throw new ApiError(401, 'signed_out', 'Signed out.');
  }
  return app.user.token;
}

// ---------------------------------------------------------------- sign-in

function showSignIn(message) {
  $('signin-provider').textContent = app.config.provider_name;
  $('signin-message').textContent = message || '';
  $('user-chip').hidden = true;
  show('signin-view');
}

// ---------------------------------------------------------------- home

async function showHome() {
  if (app.current) {
    app.current.dispose();
    app.current = null;
  }
  sessionStorage.removeItem(RESUME_KEY);
  app.keptKey = null;
  app.countdown.stop();
  history.replaceState(null, '', '/');
  $('user-name').textContent = displayName(app.user);
  $('user-chip').hidden = false;
  show('home-view');
  app.secrets ??= new SecretsCard({
    list: $('secrets'),
    form: $('secret-form'),
    api,
    token: idToken,
    onError: (e) => toast(explainApiError(e)),
    onChange: (names) => app.templates && app.templates.setSecrets(names),
  });
  await Promise.all([refreshRegions(), refreshSessions(), refreshTemplates(), app.secrets.refresh()]);
}

async function refreshTemplates() {
  app.templates ??= new TemplatePicker($('template'), $('template-description'), $('template-env'));
  try {
    const listed = await api.templates(await idToken());
    app.templates.show(listed.templates, listed.default);
  } catch (e) {
    $('template-description').textContent = 'Templates are unavailable: ' + explainApiError(e);
  }
}

async function refreshRegions() {
  const list = $('regions');
  let regions;
  try {
    regions = (await api.regions()).regions;
  } catch (e) {
    list.innerHTML = '';
    list.append(row('Regions are unavailable: ' + explainApiError(e)));
    return;
  }
  const available = regions.filter((r) => r.available).map((r) => r.region);
  app.rtts = await probeAll(available);
  list.innerHTML = '';
  if (regions.length === 0) list.append(row('No region has registered yet.'));
  const best = available.filter((r) => app.rtts[r] != null).sort((a, b) => app.rtts[a] - app.rtts[b])[0];
  for (const r of regions) {
    const li = document.createElement('li');
    li.className = 'region';
    li.dataset.region = r.region;
    li.dataset.available = r.available;
    const rtt = app.rtts[r.region];
    li.innerHTML = `<span class="dot"></span><span class="name"></span><span class="meta"></span>`;
    li.querySelector('.name').textContent = r.region + (r.region === best ? ' · nearest' : '');
    li.querySelector('.meta').textContent = !r.available
      ? (r.draining ? 'draining' : 'unavailable')
      : `${rtt == null ? '—' : `${rtt.toFixed(0)} ms`} · ${r.load}/${r.capacity} in use`;
    list.append(li);
  }
  $('start').disabled = available.length === 0;
}

function row(text) {
  const li = document.createElement('li');
  li.className = 'empty';
  li.textContent = text;
  return li;
}

async function refreshSessions() {
  const list = $('sessions');
  let sessions;
  try {
    sessions = (await api.sessions(await idToken())).sessions.filter((s) => s.state !== 'ended');
  } catch (e) {
    list.innerHTML = '';
    list.append(row(explainApiError(e)));
    return;
  }
  list.innerHTML = '';
  if (sessions.length === 0) list.append(row('No running sessions.'));
  for (const s of sessions) {
    const li = document.createElement('li');
    li.className = 'session';
    li.innerHTML = '<span class="dot"></span><code></code><span class="meta"></span><button class="ghost">Open</button><button class="ghost danger">End</button>';
    li.querySelector('code').textContent = s.session_id;
    li.querySelector('.meta').textContent = `${s.template} · ${s.region || '—'} · since ${new Date(s.created_at * 1000).toLocaleTimeString()}`;
    const [open, end] = li.querySelectorAll('button');
    open.setAttribute('aria-label', `Open session ${s.session_id}`);
    open.onclick = () => reopen(s.session_id, s.region);
    end.onclick = () => confirmClick(end, async () => {
      try {
        await api.endSession(await idToken(), s.session_id);
      } catch (e) {
        toast(explainApiError(e));
      }
      refreshSessions();
    });
    list.append(li);
  }
}

/** Starts a session; `options.lifetime_secs` overrides the lifetime picked on the home page. */
async function startSession(options = {}) {
  const button = $('start');
  button.disabled = true;
  button.textContent = 'Starting…';
  const clicked = performance.now();
  const picked = Number($('lifetime').value) || undefined;
  try {
    const chosen = app.templates ? app.templates.request() : {};
    const session = await api.startSession(await idToken(), { rtts: roundedRtts(), lifetime_secs: picked, ...chosen, ...options });
    app.metrics.mintMs = performance.now() - clicked;
    await openTerminal(session, clicked);
  } catch (e) {
    toast(explainApiError(e));
    if (e.status === 401) showSignIn();
  } finally {
    button.disabled = false;
    button.textContent = 'Start a session';
  }
}

function roundedRtts() {
  const out = {};
  for (const [region, ms] of Object.entries(app.rtts)) if (ms != null) out[region] = Math.max(1, Math.round(ms));
  return out;
}

async function reopen(sessionId, region, resume = null) {
  try {
    const { token } = await api.attachToken(await idToken(), sessionId);
    await openTerminal({ session_id: sessionId, region, token }, null, resume);
  } catch (e) {
    toast(explainApiError(e));
    if (app.user) showHome();
  }
}

// ---------------------------------------------------------------- terminal

/** The terminal, made once per page (after its font has loaded, so its cells are measured with it). */
async function ensureTerminal() {
  if (app.view) {
    app.term.reset();
    return;
  }
  await fontReady(app.prefs.fontSize);
  app.view = new TerminalView($('terminal'), {
    prefs: app.prefs,
    copy: copySelection,
    onRenderer: (renderer) => {
      app.metrics.renderer = renderer;
      $('terminal').dataset.renderer = renderer.split(' ')[0];
      $('renderer-now').textContent = renderer;
    },
  });
  app.view.onSearchKey = openSearch;
  app.view.onLeaveKey = focusToolbar;
  app.term = app.view.term;
  app.fit = app.view.fit;
  app.serialize = app.view.serialize;
}

// ---------------------------------------------------------------- terminal tools

function toggleMenu(open) {
  const bar = $('toolbar');
  const next = open ?? bar.dataset.menu !== 'open';
  bar.dataset.menu = next ? 'open' : '';
  $('more').setAttribute('aria-expanded', String(next));
}

/** Keyboard users leave the terminal (which keeps Tab for the program) for the toolbar's first control. */
function focusToolbar() {
  const first = [...$('toolbar').querySelectorAll('button')].find((b) => b.offsetParent !== null && !b.disabled);
  if (first) first.focus();
}

/** Escape in the toolbar or a drawer closes what is open and returns to the terminal. */
function escapeToTerminal(e) {
  if (e.key !== 'Escape') return;
  toggleMenu(false);
  $('settings').hidden = true;
  $('artifacts').hidden = true;
  if (app.term) app.term.focus();
}

function openSearch() {
  $('search-bar').hidden = false;
  $('search-input').focus();
  $('search-input').select();
  app.fit.fit();
}

function closeSearch() {
  $('search-bar').hidden = true;
  $('search-result').textContent = '';
  if (app.view) app.view.clearSearch();
  if (app.term) app.term.focus();
}

function findNow(backwards = false) {
  const text = $('search-input').value;
  if (!text || !app.view) return;
  $('search-result').textContent = app.view.find(text, backwards) ? '' : 'Not found';
}

/** Changes preferences: kept in this browser, and applied to the terminal when it is open. */
function setPrefs(changes) {
  app.prefs = { ...app.prefs, ...changes };
  savePrefs(app.prefs);
  if (app.view) app.view.apply(app.prefs);
  renderPrefs();
}

function renderPrefs() {
  const size = $('pref-font-size');
  if (!size.options.length) for (const px of FONT_SIZES) size.append(new Option(`${px} px`, String(px)));
  size.value = String(app.prefs.fontSize);
  $('pref-scrollback').value = String(app.prefs.scrollback);
  $('pref-alt-meta').checked = app.prefs.altIsMeta;
  $('pref-renderer').value = app.prefs.renderer;
  $('pref-screen-reader').checked = app.prefs.screenReader;
  const granted = typeof Notification !== 'undefined' && Notification.permission === 'granted';
  $('notify-permission').disabled = granted || typeof Notification === 'undefined';
  $('notify-permission').textContent = granted ? 'Notifications are on' : 'Notify me when a session needs me';
}

function stepFont(direction) {
  const at = FONT_SIZES.indexOf(app.prefs.fontSize);
  const next = FONT_SIZES[Math.min(FONT_SIZES.length - 1, Math.max(0, at + direction))];
  setPrefs({ fontSize: next });
}

function wireTools() {
  $('more').onclick = () => toggleMenu();
  $('tools').addEventListener('click', (e) => { if (e.target.closest('button')) toggleMenu(false); });
  $('search-toggle').onclick = openSearch;
  $('search-next').onclick = () => findNow(false);
  $('search-prev').onclick = () => findNow(true);
  $('search-close').onclick = closeSearch;
  $('search-input').addEventListener('keydown', (e) => {
    if (e.key === 'Enter') findNow(e.shiftKey);
    if (e.key === 'Escape') closeSearch();
  });
  for (const id of ['toolbar', 'settings', 'artifacts']) $(id).addEventListener('keydown', escapeToTerminal);
  $('font-smaller').onclick = () => stepFont(-1);
  $('font-larger').onclick = () => stepFont(1);
  $('settings-toggle').onclick = () => {
    $('settings').hidden = !$('settings').hidden;
    renderPrefs();
    // The drawer comes after the terminal, which keeps Tab: focus goes into it, Esc brings it back.
    if (!$('settings').hidden) $('pref-font-size').focus();
    else if (app.term) app.term.focus();
  };
  $('pref-font-size').onchange = (e) => setPrefs({ fontSize: Number(e.target.value) });
  $('pref-scrollback').onchange = (e) => {
    const lines = Math.round(Number(e.target.value));
    if (Number.isFinite(lines) && lines >= 0 && lines <= MAX_SCROLLBACK) setPrefs({ scrollback: lines });
    else toast(`Scrollback is 0 to ${MAX_SCROLLBACK} lines.`);
    renderPrefs();
  };
  $('pref-alt-meta').onchange = (e) => setPrefs({ altIsMeta: e.target.checked });
  $('pref-renderer').onchange = (e) => setPrefs({ renderer: e.target.value });
  $('pref-screen-reader').onchange = (e) => setPrefs({ screenReader: e.target.checked });
  $('notify-permission').onclick = async () => {
    if (typeof Notification !== 'undefined') await Notification.requestPermission();
    renderPrefs();
  };
  app.keys = new ExtraKeys($('extra-keys'), () => app.term);
  followVisualViewport();
}

async function copySelection() {
  const text = app.term.getSelection();
  if (!text) return toast('Select text in the terminal first.', 'info');
  try {
    await navigator.clipboard.writeText(text);
    toast('Copied.', 'info');
  } catch {
    toast('The browser refused clipboard access.');
  }
}

async function pasteClipboard() {
  try {
    app.term.paste(await navigator.clipboard.readText());
  } catch {
    toast('The browser refused clipboard access; use its paste shortcut.');
  }
}

async function openTerminal(session, clickedAt, resume = null) {
  if (app.current) app.current.dispose();
  show('terminal-view');
  $('overlay').hidden = true;
  $('artifacts').hidden = true;
  await ensureTerminal();
  app.fit.fit();
  app.term.focus();
  history.replaceState(null, '', `/#/s/${session.session_id}`);
  const sessionObj = new TerminalSession({
    session,
    term: app.term,
    onFirstOutput: () => {
      if (clickedAt !== null) app.metrics.sessionStartMs = performance.now() - clickedAt;
    },
    freshToken: async () => (await api.attachToken(await idToken(), session.session_id)).token,
    onChange: renderStatus,
    onStop: showStopped,
    onDeadline: (at) => app.countdown.setDeadline(at),
    resume,
    inputFilter: (text) => app.keys.filter(text),
  });
  app.current = sessionObj;
  app.metrics.statuses = [];
  app.metrics.resumedFrom = resume ? resume.offset : null;
  $('session-id').textContent = session.session_id;
  app.countdown.start();
  idToken().then((token) => api.session(token, session.session_id)).then((view) => {
    app.countdown.setLongest(view.longest_expires_at);
    if (app.countdown.deadline === null) app.countdown.setDeadline(view.expires_at);
  }).catch(() => {
    // The room's deadline effect still arrives; only the extend limit stays unknown.
  });
}

function renderStatus(s) {
  const bar = $('statusbar');
  const seen = app.metrics.statuses;
  if (seen[seen.length - 1] !== s.status) seen.push(s.status);
  bar.dataset.status = s.status;
  // While it reconnects, why the last connection closed (e.g. the service is busy), in words.
  $('status-text').textContent = STATUS_TEXT[s.status] + (s.retryIn ? ` in ${(s.retryIn / 1000).toFixed(1)} s` : '')
    + (s.lastClose && s.status !== 'ended' ? ` (${s.lastClose})` : '');
  $('status-region').textContent = s.region;
  $('status-rtt').textContent = s.rtt == null ? '— ms' : `${s.rtt} ms`;
  $('status-bytes').textContent = formatBytes(s.offset);
}

function formatBytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

function showStopped({ message, next }) {
  sessionStorage.removeItem(RESUME_KEY);
  app.keptKey = null;
  app.countdown.stop();
  const overlay = $('overlay');
  $('overlay-message').textContent = message;
  $('overlay-new').hidden = next !== 'new-session';
  overlay.dataset.next = next;
  overlay.hidden = false;
}

async function endCurrent() {
  const s = app.current;
  if (!s) return;
  await confirmClick($('end'), async () => {
    try {
      await api.endSession(await idToken(), s.session.session_id);
    } catch (e) {
      toast(explainApiError(e));
    }
  });
}

/** While the drawer is open its list is refreshed this often: files the session writes to ~/outbox
 * or puts with `edgeshell-files` appear without a click. */
const ARTIFACTS_REFRESH_MS = 5000;

async function toggleArtifacts() {
  const panel = $('artifacts');
  if (!panel.hidden) {
    panel.hidden = true;
    if (app.term) app.term.focus();
    return;
  }
  panel.hidden = false;
  panel.focus();
  const list = $('artifact-list');
  list.innerHTML = '';
  list.append(row('Loading…'));
  const id = app.current && app.current.session.session_id;
  // One refresh loop: opening the drawer again ends the loop of the last opening.
  const opening = (toggleArtifacts.openings = (toggleArtifacts.openings || 0) + 1);
  let shown = null;
  const refresh = async () => {
    const current = app.current && app.current.session.session_id === id;
    if (panel.hidden || !current || opening !== toggleArtifacts.openings) return;
    try {
      const { artifacts } = await api.artifacts(await idToken(), id);
      const summary = JSON.stringify(artifacts.map((a) => [a.path, a.size, a.sha256]));
      if (summary !== shown) {
        shown = summary;
        showArtifacts(list, id, artifacts);
      }
    } catch (e) {
      shown = null;
      list.innerHTML = '';
      list.append(row(explainApiError(e)));
    }
    setTimeout(refresh, ARTIFACTS_REFRESH_MS);
  };
  await refresh();
}

function showArtifacts(list, id, artifacts) {
  list.innerHTML = '';
  if (artifacts.length === 0) {
    list.append(row('Nothing yet: files the session writes to ~/outbox or puts with edgeshell-files appear here.'));
  }
  for (const a of artifacts) {
    const li = document.createElement('li');
    li.className = 'artifact';
    li.innerHTML = '<code></code><span class="meta"></span><button class="ghost">Download</button>';
    li.querySelector('code').textContent = a.path;
    li.querySelector('.meta').textContent = formatBytes(a.size);
    li.querySelector('button').onclick = () => download(id, a.path);
    list.append(li);
  }
}

async function download(id, path) {
  try {
    // Each link works once and briefly: ask for it at click time. Its token goes in a header, never in a
    // URL (where logs keep it), so the file is fetched here and handed to the browser as a blob.
    const { url, token } = await api.artifactLink(await idToken(), id, path);
    const answer = await fetch(new URL(url).pathname, { headers: { authorization: `Bearer ${token}` } });
    if (!answer.ok) throw await api.errorOf(answer);
    const blob = URL.createObjectURL(await answer.blob());
    const a = document.createElement('a');
    a.href = blob;
    a.download = path.split('/').pop();
    a.click();
    setTimeout(() => URL.revokeObjectURL(blob), 60_000);
  } catch (e) {
    toast(explainApiError(e));
  }
}

// ---------------------------------------------------------------- boot

async function boot() {
  // `?scrollback=N` sets the terminal's history (lines), as the settings panel does.
  const scrollback = Math.round(Number(new URLSearchParams(location.search).get('scrollback')));
  if (scrollback > 0) setPrefs({ scrollback: Math.min(scrollback, MAX_SCROLLBACK) });
  $('signin').onclick = async () => {
    try {
      await app.auth.signIn(); // a redirect for OIDC; a popup that resolves for Firebase
      app.user = await app.auth.user();
      if (app.user) signedIn();
    } catch (e) {
      showSignIn(`Sign-in failed: ${e.message}`);
    }
  };
  $('signout').onclick = () => {
    app.auth.signOut().catch(() => {});
    if (app.current) app.current.dispose();
    app.current = null;
    showSignIn();
  };
  $('start').onclick = () => startSession();
  app.startSession = startSession;
  $('refresh-regions').onclick = () => refreshRegions();
  $('overlay-new').onclick = () => {
    showHome().then(() => startSession());
  };
  $('overlay-home').onclick = () => showHome();
  $('home').onclick = () => showHome();
  $('end').onclick = endCurrent;
  $('copy').onclick = copySelection;
  $('paste').onclick = pasteClipboard;
  wireTools();
  $('artifacts-toggle').onclick = toggleArtifacts;
  app.countdown = new Countdown({
    $,
    toast,
    extend: async (by) => api.extend(await idToken(), app.current.session.session_id, by),
  });
  // A reload continues this tab's seat at the exact byte: keep where it is, now and then and on leaving.
  setInterval(keepResumePoint, 3000);
  window.addEventListener('pagehide', keepResumePoint);
  document.addEventListener('visibilitychange', () => { if (document.hidden) keepResumePoint(); });

  try {
    [app.config] = await Promise.all([api.config(), init({ module_or_path: '/client.wasm' })]);
  } catch (e) {
    document.body.textContent = `edgeshell cannot start: ${e.message}`;
    return;
  }
  try {
    app.auth = await createSignIn(app.config, () => {
      if (app.current) app.current.dispose();
      app.current = null;
      showSignIn('You were signed out (in another tab, or your sign-in ended).');
    });
  } catch (e) {
    document.body.textContent = `edgeshell cannot start its sign-in: ${e.message}`;
    return;
  }
  const { error } = await app.auth.restore();
  app.user = await app.auth.user().catch(() => null);
  if (!app.user) return showSignIn(error);
  return signedIn();
}

/** After sign-in: the session the link names (kept through the sign-in), else home. */
async function signedIn() {
  const reopenId = sessionLink(location.hash).slice('#/s/'.length);
  if (reopenId) {
    const s = await api.sessions(await idToken()).catch(() => ({ sessions: [] }));
    const known = s.sessions.find((x) => x.session_id === reopenId);
    $('user-name').textContent = displayName(app.user);
    $('user-chip').hidden = false;
    if (known && known.state !== 'ended') return reopen(reopenId, known.region, keptResumePoint(reopenId));
  }
  return showHome();
}

boot();
