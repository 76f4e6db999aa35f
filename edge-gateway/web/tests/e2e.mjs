// End-to-end tests of the web client in headless Chromium (Debian's, driven by playwright-core), against
// a running stack. Started by crates/e2e/tests/browser.rs, which starts the stack, answers this script's
// requests on stdin (stop or start a region) and checks the figures it prints.
//
// Environment: EDGESHELL_URL (the edge), EDGESHELL_SAMPLE_CLI (the sample CLI's path), EDGESHELL_SCREENSHOT
// (where to save the screenshot of a live session), CHROMIUM (default /usr/bin/chromium).
// Output: one JSON object per line: {"step"}, {"figure", "value", "unit"}, {"need"} (answered on stdin with
// {"ok": true}), and finally {"done": true}. Any failure exits non-zero with the reason.

import { chromium } from 'playwright-core';
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import net from 'node:net';
import readline from 'node:readline';

const edge = new URL(process.env.EDGESHELL_URL || 'http://127.0.0.1:8787');
const SAMPLE_CLI = process.env.EDGESHELL_SAMPLE_CLI || 'edgeshell-sample-cli';
const GIT_URL = process.env.EDGESHELL_GIT_URL;
const out = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);

// ------------------------------------------------------------------ requests to the harness

const lines = [];
let waiting = null;
readline.createInterface({ input: process.stdin }).on('line', (line) => {
  if (waiting) {
    const w = waiting;
    waiting = null;
    w(line);
  } else {
    lines.push(line);
  }
});

async function ask(need, args = {}) {
  out({ need, ...args });
  const line = lines.length ? lines.shift() : await new Promise((resolve) => { waiting = resolve; });
  const reply = JSON.parse(line);
  if (!reply.ok) throw new Error(`the harness could not ${need}: ${reply.error}`);
  return reply;
}

// ------------------------------------------------------------------ a proxy that can cut the page off

// Every connection of the page goes through this loopback proxy, so the test can cut them all in the
// middle of a transfer (as a network drop would) and refuse new ones for a while.
class CutProxy {
  constructor(upstreamPort) {
    this.upstreamPort = upstreamPort;
    this.pairs = new Set();
    this.refusing = false;
    this.cutAfter = null;
    this.cuts = 0;
  }

  start() {
    this.server = net.createServer((client) => this.accept(client));
    return new Promise((resolve) => this.server.listen(0, '127.0.0.1', () => {
      this.port = this.server.address().port;
      resolve(this);
    }));
  }

  accept(client) {
    if (this.refusing) {
      client.destroy();
      return;
    }
    const upstream = net.connect(this.upstreamPort, '127.0.0.1');
    const pair = { client, upstream };
    this.pairs.add(pair);
    const drop = () => {
      this.pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    client.pipe(upstream);
    upstream.on('data', (chunk) => {
      if (this.cutAfter !== null) {
        this.cutAfter.seen += chunk.length;
        if (this.cutAfter.seen >= this.cutAfter.bytes) {
          // Deliver part of this chunk, then cut: the page is left in the middle of a message.
          client.write(chunk.subarray(0, Math.floor(chunk.length / 2)));
          const { refuseMs } = this.cutAfter;
          this.cutAfter = null;
          this.cut(refuseMs);
          return;
        }
      }
      client.write(chunk);
    });
  }

  /** Cuts every connection after `bytes` more bytes towards the page, then refuses new ones for `refuseMs`. */
  armCut(bytes, refuseMs) {
    this.cutAfter = { bytes, seen: 0, refuseMs };
  }

  cut(refuseMs) {
    this.cuts += 1;
    this.cutAt = Date.now();
    this.refusing = true;
    for (const { client, upstream } of this.pairs) {
      client.destroy();
      upstream.destroy();
    }
    this.pairs.clear();
    setTimeout(() => { this.refusing = false; }, refuseMs);
  }

  close() {
    for (const { client, upstream } of this.pairs) {
      client.destroy();
      upstream.destroy();
    }
    this.server.close();
  }
}

// ------------------------------------------------------------------ terminal helpers

async function screen(page) {
  return page.evaluate(() => {
    const buffer = window.edgeshell.term.buffer.active;
    const rows = [];
    for (let i = 0; i < buffer.length; i += 1) rows.push(buffer.getLine(i).translateToString(true));
    return rows;
  });
}

async function waitFor(what, check, timeoutMs = 15000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    last = await check();
    if (last) return last;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function waitForLine(page, predicate, what, timeoutMs) {
  return waitFor(what, async () => (await screen(page)).find(predicate), timeoutMs);
}

async function status(page) {
  return page.getAttribute('#statusbar', 'data-status');
}

async function typeLine(page, text) {
  await page.click('#terminal');
  await page.keyboard.type(text);
  await page.keyboard.press('Enter');
}

async function waitLive(page) {
  await page.waitForSelector('#terminal-view', { state: 'visible' });
  await waitFor('the session to be live', async () => (await status(page)) === 'live');
}

// ------------------------------------------------------------------ the scenarios

// Signs in at the dev issuer's page (the code flow with PKCE), from the page's sign-in view.
async function signInAtIssuer(page, base, user) {
  await page.waitForSelector('#signin-view', { state: 'visible' });
  await page.click('#signin');
  await page.waitForURL((url) => url.port !== String(new URL(base).port));
  await page.fill('#user', user);
  await page.click('button[type=submit]');
}

async function signIn(page, base, user = 'alice') {
  await page.goto(`${base}/?scrollback=60000`);
  await signInAtIssuer(page, base, user);
  await page.waitForSelector('#home-view', { state: 'visible' });
  await waitFor('two available regions', async () => (await page.$$('.region[data-available="true"]')).length === 2);
  const rtts = await page.$$eval('.region .meta', (els) => els.map((e) => e.textContent));
  if (!rtts.every((t) => /\d+ ms/.test(t))) throw new Error(`regions without a measured RTT: ${rtts}`);
}

// With a Firebase project configured, the page loads Firebase's sign-in (a chunk of its own) and
// reports a failed sign-in clearly; nothing leaves loopback here, so Google cannot be reached.
async function firebaseSignIn(context, base) {
  const page = await context.newPage();
  let chunk = false;
  page.on('request', (r) => { chunk ||= r.url().includes('/chunks/firebase-'); });
  const config = {
    firebase: { project_id: 'demo-edgeshell', api_key: 'demo-api-key', auth_domain: 'demo-edgeshell.firebaseapp.com' },
    oidc: null,
    provider_name: 'Google',
    protocol: 'edgeshell.v1',
  };
  await page.route('**/client-config.json', (route) => route.fulfill({ json: config }));
  await page.route(/^https?:\/\/(?!127\.0\.0\.1[:/])/, (route) => route.abort());
  await page.goto(`${base}/`);
  await page.waitForSelector('#signin-view', { state: 'visible' });
  if ((await page.textContent('#signin-provider')) !== 'Google') throw new Error('the provider name is not shown');
  await page.click('#signin');
  await waitFor('a sign-in error', async () => /Sign-in failed/.test(await page.textContent('#signin-message')), 20000);
  if (!chunk) throw new Error('the Firebase chunk was never loaded');
  await page.close();
}

// The document's security policy, the static assets' headers, framing refused, and a socket offering
// another protocol version told why (a close code) rather than failed by the browser: the edge never
// answers a subprotocol the page did not offer.
async function pagePolicy(context, page, base) {
  const doc = await fetch(`${base}/`);
  const csp = doc.headers.get('content-security-policy') || '';
  for (const part of ["default-src 'none'", "script-src 'self' 'wasm-unsafe-eval'", "frame-ancestors 'none'", "object-src 'none'"]) {
    if (!csp.includes(part)) throw new Error(`the page's policy lacks ${part}: ${csp}`);
  }
  if (doc.headers.get('x-frame-options') !== 'DENY') throw new Error('the page has no X-Frame-Options: DENY');
  const script = await fetch(`${base}/app.js`);
  if (script.headers.get('x-content-type-options') !== 'nosniff') throw new Error('app.js is served without nosniff');

  const framer = await context.newPage();
  const refusals = [];
  framer.on('console', (m) => { if (m.text().includes('frame-ancestors')) refusals.push(m.text()); });
  await framer.setContent(`<iframe id="f" src="${base}/"></iframe>`);
  await waitFor('the framing to be refused', async () => refusals.length > 0 || framer.frames().some((f) => f.url().startsWith('chrome-error:')));
  const framed = framer.frames().find((f) => f !== framer.mainFrame());
  const loaded = framed && await framed.evaluate(() => !!document.querySelector('#home')).catch(() => false);
  if (loaded) throw new Error('another page framed the terminal page');
  await framer.close();

  const wsBase = base.replace(/^http/, 'ws');
  const code = await page.evaluate((url) => new Promise((resolve) => {
    const ws = new WebSocket(url, ['edgeshell.v0', 'edgeshell.auth.not-a-token']);
    ws.onclose = (e) => resolve(e.code);
  }), `${wsBase}/sessions/s_nowhere0000000000000000/attach`);
  if (code !== 4000) throw new Error(`an old client was not told protocol_error (4000) but got ${code}`);
}

async function startSession(page) {
  await page.click('#start');
  await waitLive(page);
  // The first output byte (the shell's prompt) sets the figure.
  await waitFor('the first output', () => page.evaluate(() => window.edgeshell.metrics.sessionStartMs));
  return page.evaluate(() => ({ total: window.edgeshell.metrics.sessionStartMs, mint: window.edgeshell.metrics.mintMs }));
}

/** Ends `sid` (the page's current session by default) through the API, as the page's user. */
async function endSession(page, sid = null) {
  await page.evaluate(async (id) => {
    const session = id || window.edgeshell.current.session.session_id;
    const token = (await window.edgeshell.auth.user()).token;
    const answer = await fetch(`/api/sessions/${session}`, { method: 'DELETE', headers: { authorization: `Bearer ${token}` } });
    if (!answer.ok) throw new Error(`DELETE /api/sessions/${session} answered ${answer.status}`);
  }, sid);
}

async function sessionStartTimes(page, n) {
  const times = [];
  for (let i = 0; i < n; i += 1) {
    times.push(await startSession(page));
    if (i < n - 1) {
      await page.click('#home');
      await page.waitForSelector('#home-view', { state: 'visible' });
    }
  }
  return times;
}

// The home page offers the pools' catalogue (and a repository: see `repository`); a template's
// variable, typed into its field, reaches the
// program along with the template's memory limit and the user's secret the template takes (saved in
// the secrets card, never shown again); a variable no template allows is refused by the control plane
// with a 400 naming it, and starts nothing.
async function templates(page) {
  await page.click('#home');
  await page.waitForSelector('#home-view', { state: 'visible' });
  await waitFor('the catalogue', async () => (await page.$$('#template option')).length === 3);
  const titles = await page.$$eval('#template option', (els) => els.map((e) => e.textContent));
  if (titles.join('|') !== 'Shell|Shell with agent settings|Shell in a repository') throw new Error(`the catalogue shows ${titles}`);
  await page.selectOption('#template', 'shell-with-settings');
  await page.fill('input[data-env="AGENT_MODEL"]', 'model-from-the-page');
  const described = await page.textContent('#template-description');
  if (!described.includes('Offered in eu, us')) throw new Error(`the description says ${described}`);
  if (!described.includes('AGENT_TOKEN (not set)')) throw new Error(`the description says ${described}`);
  const secret = `secret-from-the-page-${Date.now()}`;
  await page.fill('#secret-form [name=name]', 'AGENT_TOKEN');
  await page.fill('#secret-form [name=value]', secret);
  await page.click('#secret-form button[type=submit]');
  await waitFor('the secret listed', async () => (await page.$$eval('#secrets li.secret code', (els) => els.map((e) => e.textContent))).includes('AGENT_TOKEN'));
  if ((await page.inputValue('#secret-form [name=value]')) !== '') throw new Error('the value stayed in its field');
  await waitFor('the template to say the secret is set', async () => (await page.textContent('#template-description')).includes('AGENT_TOKEN (set)'));
  const listed = await page.evaluate(async () => {
    const token = (await window.edgeshell.auth.user()).token;
    return (await fetch('/api/secrets', { headers: { authorization: `Bearer ${token}` } })).text();
  });
  if (listed.includes(secret) || !listed.includes('AGENT_TOKEN')) throw new Error(`GET /api/secrets answered ${listed}`);
  const refused = await page.evaluate(async () => {
    const token = (await window.edgeshell.auth.user()).token;
    const answer = await fetch('/api/sessions', {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ template: 'shell-with-settings', env: { AWS_SECRET_ACCESS_KEY: 'x' } }),
    });
    return { status: answer.status, body: await answer.json() };
  });
  if (refused.status !== 400 || refused.body.error.code !== 'bad_env' || !refused.body.error.message.includes('env.AWS_SECRET_ACCESS_KEY')) {
    throw new Error(`a forbidden variable was answered ${JSON.stringify(refused)}`);
  }
  await startSession(page);
  await typeLine(page, 'echo "model=$AGENT_MODEL" "mem=$(ulimit -v)" "effort=${AGENT_EFFORT:-unset}" "token=$AGENT_TOKEN"');
  await waitForLine(page, (l) => l.includes(`model=model-from-the-page mem=${768 * 1024} effort=unset token=${secret}`), 'the variable, the limit and the secret');
  await endSession(page);
  await page.waitForSelector('#overlay', { state: 'visible' });
  await page.click('#overlay-home');
  await page.waitForSelector('#home-view', { state: 'visible' });
  await repository(page);
  await page.selectOption('#template', 'default');
  await startSession(page);
}

// A repository, from the page: cloned before the shell starts, which starts in it; one that is not
// there ends the session with the reason on the terminal.
async function repository(page) {
  await page.selectOption('#template', 'shell-in-a-repository');
  if (await page.isHidden('#repo-url')) throw new Error('the template takes a repository, but the page asks for none');
  await page.fill('#repo-url', GIT_URL);
  await page.fill('#repo-ref', 'v1');
  await startSession(page);
  await waitForLine(page, (l) => l.includes('into ~/widget'), 'the clone to be reported');
  await typeLine(page, 'echo "at=$(basename "$(pwd)")"; cat README.md');
  await waitForLine(page, (l) => l.includes('hello from the widget repository'), 'the repository in the work directory');
  await waitForLine(page, (l) => l.trim() === 'at=widget', 'the shell in the clone');
  await endSession(page);
  await page.waitForSelector('#overlay', { state: 'visible' });
  await page.click('#overlay-home');
  await page.waitForSelector('#home-view', { state: 'visible' });
  await page.selectOption('#template', 'shell-in-a-repository');
  await page.fill('#repo-url', GIT_URL.replace('widget.git', 'missing.git'));
  await page.fill('#repo-ref', '');
  await page.click('#start');
  await page.waitForSelector('#overlay', { state: 'visible', timeout: 30000 });
  const rows = await screen(page);
  if (!rows.some((l) => l.includes('could not be cloned'))) throw new Error(`a failed clone showed ${rows.join(' / ')}`);
  const ended = await page.textContent('#overlay-message');
  if (!/exited with status 1/.test(ended)) throw new Error(`a failed clone was reported as: ${ended}`);
  await page.click('#overlay-home');
  await page.waitForSelector('#home-view', { state: 'visible' });
}

async function echoHello(page) {
  await typeLine(page, 'echo hello');
  await waitForLine(page, (l) => l.trim() === 'hello', '"hello" on its own line');
}

// A reload continues the tab's seat at the exact byte: the screen comes back as it was (kept in the
// tab's sessionStorage with the ticket and the offset it matches), nothing is replayed, and input after
// it reaches the program untouched. Four reloads in a row never lock the owner out.
async function reloadResumes(page) {
  await typeLine(page, 'clear; for i in $(seq 1 30); do echo line-$i; done; printf "\\033[1;31mred\\033[0m done\\n"');
  await waitForLine(page, (l) => l.trim() === 'red done', 'the coloured line');
  const tail = async () => (await screen(page)).map((l) => l.trimEnd()).filter((l, i, all) => i < all.length).slice(-40);
  const trimmed = (rows) => { const r = rows.slice(); while (r.length && !r[r.length - 1]) r.pop(); return r; };
  for (let i = 0; i < 4; i += 1) {
    // Quiet for a moment, so the kept point is the latest (it is also taken as the page unloads).
    await new Promise((r) => setTimeout(r, 3500));
    const before = trimmed(await tail());
    const offset = await page.evaluate(() => window.edgeshell.current.link.offset);
    await page.reload();
    await waitLive(page);
    const resumedFrom = await page.evaluate(() => window.edgeshell.metrics.resumedFrom);
    if (resumedFrom !== offset) throw new Error(`reload ${i + 1} did not continue at ${offset} (kept ${resumedFrom})`);
    const after = trimmed(await tail());
    if (JSON.stringify(after) !== JSON.stringify(before)) {
      throw new Error(`reload ${i + 1} changed the screen:\n${before.join('\n')}\n---\n${after.join('\n')}`);
    }
    const red = await page.evaluate(() => {
      const b = window.edgeshell.term.buffer.active;
      for (let y = b.length - 1; y >= 0; y -= 1) {
        const line = b.getLine(y);
        if (line.translateToString(true).startsWith('red done')) return line.getCell(0).getFgColor();
      }
      return null;
    });
    if (red !== 1) throw new Error(`reload ${i + 1} lost the colour (fg ${red})`);
  }
  await typeLine(page, 'cat -v');
  await typeLine(page, 'typed-after-reload');
  await waitFor('cat to echo the line', async () => (await screen(page)).filter((l) => l.trim() === 'typed-after-reload').length === 2);
  if ((await screen(page)).some((l) => l.includes('^['))) throw new Error('a terminal answer reached the program as typed input');
  await page.keyboard.press('Control+C');
}

/** Every cell of the terminal's viewport and where its cursor is: what a person sees. */
async function cells(page) {
  return page.evaluate(() => {
    const t = window.edgeshell.term;
    const b = t.buffer.active;
    const rows = [];
    for (let y = b.viewportY; y < b.viewportY + t.rows; y += 1) {
      const line = b.getLine(y);
      const row = [];
      for (let x = 0; x < t.cols; x += 1) {
        const c = line.getCell(x);
        row.push([c.getChars(), c.getWidth(), c.getFgColorMode(), c.getFgColor(), c.getBgColorMode(), c.getBgColor(), c.isBold(), c.isInverse()]);
      }
      rows.push(row);
    }
    return { type: b.type, cursor: [b.cursorX, b.cursorY], cols: t.cols, rows };
  });
}

function sameCells(a, b, what) {
  if (a.type !== b.type) throw new Error(`${what}: the ${b.type} buffer is shown, not the ${a.type} one`);
  if (JSON.stringify(a.cursor) !== JSON.stringify(b.cursor)) throw new Error(`${what}: cursor at ${b.cursor}, not ${a.cursor}`);
  for (let y = 0; y < a.rows.length; y += 1) {
    for (let x = 0; x < a.rows[y].length; x += 1) {
      if (JSON.stringify(a.rows[y][x]) !== JSON.stringify(b.rows[y][x])) {
        throw new Error(`${what}: cell (${x}, ${y}) is ${JSON.stringify(b.rows[y][x])}, not ${JSON.stringify(a.rows[y][x])}`);
      }
    }
  }
}

// A full-screen program (alternate screen, colours, a wide character, cursor moves) is left running
// and the page leaves; another browser opens the session from its list and is drawn the very screen,
// cell by cell, cursor included; when the program exits, both are back on the same primary screen.
async function freshAttach(browser, page, base) {
  // The drawing, then 1.4 MB of updates in place: more than the room's raw history and the page's ack
  // window hold, so the switch to the alternate screen and the drawing itself reach a fresh browser
  // only in a snapshot.
  const tui = "printf '\\033[?1049h\\033[2J\\033[H\\033[1;33mAGENT\\033[0m working\\033[5;10H\\033[44;37m box \\033[0m"
    + "\\033[8;3Hwide: 中文 ok'; i=0; while [ $i -lt 25000 ]; do printf '\\033[12;1H\\033[32mstep %05d\\033[0m of the plan .......................' $i; i=$((i+1)); done;"
    + " printf '\\033[3;20H'; read x; printf '\\033[?1049l'";
  await typeLine(page, `clear; echo before-the-program; ${tui}`);
  await waitForLine(page, (l) => l.startsWith('step 24999'), 'the program\'s last update', 30000);
  await new Promise((r) => setTimeout(r, 1500)); // the runner's snapshot once output settles
  const watched = await cells(page);
  const id = await page.textContent('#session-id');
  await page.click('#home');
  await page.waitForSelector('#home-view', { state: 'visible' });
  const context = await browser.newContext({ viewport: { width: 1100, height: 700 } });
  const other = await context.newPage();
  await signIn(other, base);
  await other.click(`.session:has(code:text("${id}")) button:text("Open")`);
  await waitLive(other);
  await waitFor('the screen drawn', async () => (await cells(other)).type === 'alternate');
  await new Promise((r) => setTimeout(r, 300));
  sameCells(watched, await cells(other), 'a fresh attach');
  // Beside the live session's screenshot: what the fresh browser shows.
  if (process.env.EDGESHELL_SCREENSHOT) await other.screenshot({ path: process.env.EDGESHELL_SCREENSHOT.replace(/\.png$/, '-fresh-attach.png') });
  if (!(await other.evaluate(() => window.edgeshell.current.snapshots))) throw new Error('the screen was not drawn from a snapshot');
  // The program exits: the primary screen under it comes back, in both.
  await typeLine(other, '');
  await waitFor('the primary screen', async () => (await cells(other)).type === 'normal');
  await waitForLine(other, (l) => l.trim() === 'before-the-program', 'the primary screen under the program');
  const back = await cells(other);
  await context.close();
  await page.click(`.session:has(code:text("${id}")) button:text("Open")`);
  await waitLive(page);
  await waitFor('the same primary screen', async () => (await cells(page)).type === 'normal');
  await new Promise((r) => setTimeout(r, 1500));
  sameCells(back, await cells(page), 'the primary screen after the program');
}

// The session's time: the countdown from the room's deadline; a 60 s session warned at once and
// extended by an hour from the warning, which the room and the runner both honour (it is still live
// after its first deadline and the runner's backstop); another left alone ends at its deadline with the
// reason in words; ending one's own session asks twice and says so.
async function lifetime(context, page, base) {
  const left = await page.textContent('#time-left');
  if (!/^(7 h 59 m|8 h 00 m) left$/.test(left)) throw new Error(`a default session shows "${left}"`);
  const second = await context.newPage();
  for (const p of [page, second]) {
    if (p === second) {
      // A new tab of the same browser is signed in already.
      await second.goto(`${base}/`);
      await second.waitForSelector('#home-view', { state: 'visible' });
    } else {
      await page.click('#home');
      await page.waitForSelector('#home-view', { state: 'visible' });
    }
    await p.evaluate(() => window.edgeshell.startSession({ lifetime_secs: 60 }));
    await waitLive(p);
  }
  await page.waitForSelector('#deadline-warning', { state: 'visible' });
  const first = await page.evaluate(() => window.edgeshell.countdown.deadline);
  await page.click('#deadline-extend');
  await waitFor('the room to announce the new deadline', () => page.evaluate((f) => window.edgeshell.countdown.deadline === f + 3600, first));
  if (!(await page.isHidden('#deadline-warning'))) throw new Error('the warning stays after the extension');
  const id = await page.textContent('#session-id');
  const view = await page.evaluate((sid) => fetch(`/api/sessions/${sid}`, { headers: { authorization: `Bearer ${window.edgeshell.user.token}` } }).then((r) => r.json()), id);
  if (view.expires_at !== first + 3600) throw new Error(`the control plane says ${view.expires_at}, not ${first + 3600}`);
  // Past the first deadline and the runner's backstop (5 s): still live, and the program answers.
  await waitFor('the second session to end at its deadline', async () => !(await second.isHidden('#overlay')), 90000);
  const ended = await second.textContent('#overlay-message');
  if (!/time limit/.test(ended)) throw new Error(`the deadline was reported as: ${ended}`);
  if ((await status(second)) !== 'ended') throw new Error(`a deadline shows status ${await status(second)}`);
  await new Promise((r) => setTimeout(r, Math.max(0, (first + 8) * 1000 - Date.now())));
  if ((await status(page)) !== 'live') throw new Error(`the extended session is ${await status(page)} after its first deadline`);
  await echoHello(page);
  // Ending asks twice, then says who ended it.
  await page.click('#end');
  if ((await page.textContent('#end')) !== 'Click again to end') throw new Error('ending did not ask for confirmation');
  await page.click('#end');
  await page.waitForSelector('#overlay', { state: 'visible' });
  const byOwner = await page.textContent('#overlay-message');
  if (!/ended by its owner/.test(byOwner)) throw new Error(`ending one's session was reported as: ${byOwner}`);
  await second.close();
  await page.click('#overlay-home');
  await page.waitForSelector('#home-view', { state: 'visible' });
  await startSession(page);
  await echoHello(page);
}

// Where a cell of the row showing `text` is on the page, for screenshots of single cells.
async function cellClip(page, text, col, lowerHalf = true) {
  const g = await page.evaluate((wanted) => {
    const t = window.edgeshell.term;
    const b = t.buffer.active;
    let row = -1;
    for (let i = 0; i < t.rows; i += 1) if (b.getLine(b.viewportY + i).translateToString(true).trim() === wanted) row = i;
    const r = t.element.querySelector('.xterm-screen').getBoundingClientRect();
    return { x: r.left, y: r.top, w: r.width / t.cols, h: r.height / t.rows, row };
  }, text);
  if (g.row < 0) throw new Error(`no row shows ${text}`);
  const top = g.y + g.row * g.h + (lowerHalf ? g.h / 2 : 0);
  return { x: g.x + col * g.w, y: top, width: g.w, height: lowerHalf ? g.h / 2 : g.h };
}

// What AI coding CLIs rely on: the WebGL renderer, OSC 52 copies reaching the clipboard, Shift+Enter as
// ESC CR, Unicode 11 widths, search in the scrollback, underscores that show, one paste per Ctrl+Shift+V,
// a megabyte pasted while output floods in,
// a bell in a background tab raising the title's badge, and the DOM renderer taking over when WebGL
// is unavailable or its context is lost.
async function terminalFeatures(browser, context, page, base) {
  const renderer = await page.evaluate(() => window.edgeshell.metrics.renderer);
  if (renderer !== 'webgl') throw new Error(`the renderer is ${renderer}, not webgl`);

  await page.evaluate(() => navigator.clipboard.writeText('nothing yet'));
  await typeLine(page, "clear; printf '\\033]52;c;%s\\a' \"$(printf 'copied by the program' | base64)\"");
  await waitFor('the OSC 52 copy on the clipboard', async () => (await page.evaluate(() => navigator.clipboard.readText())) === 'copied by the program');

  // A program may not read the clipboard: its OSC 52 query gets nothing of it back.
  await page.evaluate(() => navigator.clipboard.writeText('clipboard secret'));
  await typeLine(page, "clear; f=$(mktemp); stty raw -echo; printf '\\033]52;c;?\\a'; timeout 2 cat > $f; stty sane; echo; echo \"reply: $(cat -v $f)\"; rm -f $f");
  const reply = await waitForLine(page, (l) => l.startsWith('reply:') && !l.includes('$('), 'the answer to an OSC 52 query');
  if (reply.includes(btoa('clipboard secret')) || reply.includes('clipboard secret')) throw new Error(`a program read the clipboard: ${reply}`);

  await typeLine(page, 'clear; stty raw -echo; od -An -c -N2; stty sane');
  await new Promise((r) => setTimeout(r, 500));
  await page.keyboard.press('Shift+Enter');
  await waitForLine(page, (l) => /^\s*033\s+\\r\s*$/.test(l), 'Shift+Enter as ESC CR');

  await typeLine(page, 'clear; echo "A中文😀B"');
  const wide = await waitFor('the wide line', () => page.evaluate(() => {
    const b = window.edgeshell.term.buffer.active;
    for (let i = 0; i < b.length; i += 1) {
      const line = b.getLine(i);
      if (line.translateToString(true) === 'A中文😀B') return { b: line.getCell(7).getChars(), emoji: line.getCell(5).getWidth() };
    }
    return null;
  }));
  if (wide.b !== 'B' || wide.emoji !== 2) throw new Error(`wide characters misplaced: ${JSON.stringify(wide)}`);

  await typeLine(page, 'clear; echo needle-in-the-scrollback; seq 1 400');
  await waitForLine(page, (l) => l.trim() === '400', 'the last of 400 lines');
  await page.click('#search-toggle');
  await page.fill('#search-input', 'needle-in-the-scrollback');
  await page.press('#search-input', 'Enter');
  await waitFor('the match selected and scrolled to', () => page.evaluate(() => {
    const t = window.edgeshell.term;
    return t.getSelection() === 'needle-in-the-scrollback' && t.buffer.active.viewportY < t.buffer.active.baseY;
  }));
  await page.click('#search-close');

  await typeLine(page, "clear; echo 'a_b a b'");
  await waitForLine(page, (l) => l === 'a_b a b', 'a_b');
  await new Promise((r) => setTimeout(r, 300));
  const underscore = await page.screenshot({ clip: await cellClip(page, 'a_b a b', 1) });
  const space = await page.screenshot({ clip: await cellClip(page, 'a_b a b', 5) });
  if (underscore.equals(space)) throw new Error('the underscore draws nothing below the middle of its cell');

  await page.evaluate(() => navigator.clipboard.writeText('echo pasted-$((20+22))'));
  await typeLine(page, 'clear');
  await page.keyboard.press('Control+Shift+V');
  await page.keyboard.press('Enter');
  await waitForLine(page, (l) => l.trim() === 'pasted-42', 'the pasted command ran');
  const pasted = (await screen(page)).join('\n').split('echo pasted-').length - 1;
  if (pasted !== 1) throw new Error(`one Ctrl+Shift+V pasted ${pasted} times`);

  await largePasteWhileOutputFlows(page);

  // The tab goes to the background (Playwright makes every page report focus and visibility, so the
  // page is told what a browser tells a background tab), then the program rings.
  await typeLine(page, "clear; sleep 2; printf '\\a'; printf '\\033]777;notify;agent;needs input\\a'");
  await page.evaluate(() => {
    Object.defineProperty(document, 'hidden', { configurable: true, get: () => true });
    Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'hidden' });
    document.hasFocus = () => false;
    document.dispatchEvent(new Event('visibilitychange'));
    window.notified = [];
    const Real = window.Notification;
    window.Notification = class extends Real {
      constructor(title, options) {
        window.notified.push(options.body);
        super(title, options);
      }
    };
  });
  await waitFor('the badge in the background tab', async () => /^\(2\) /.test(await page.title()), 10000);
  const notified = await page.evaluate(() => window.notified);
  if (!notified.includes('agent: needs input')) throw new Error(`notifications shown: ${JSON.stringify(notified)}`);
  await page.evaluate(() => {
    delete document.hidden;
    delete document.visibilityState;
    delete document.hasFocus;
    document.dispatchEvent(new Event('visibilitychange'));
  });
  await waitFor('the badge cleared', async () => !/^\(/.test(await page.title()));

  // WebGL unavailable: the DOM renderer draws.
  const plain = await browser.newContext({ viewport: { width: 900, height: 600 } });
  await plain.addInitScript(() => {
    const getContext = HTMLCanvasElement.prototype.getContext;
    HTMLCanvasElement.prototype.getContext = function withoutWebgl(type, ...rest) {
      return /webgl/.test(type) ? null : getContext.call(this, type, ...rest);
    };
  });
  const dom = await plain.newPage();
  await signIn(dom, base, 'dora');
  await startSession(dom);
  const fallback = await dom.evaluate(() => window.edgeshell.metrics.renderer);
  if (!fallback.startsWith('dom')) throw new Error(`without WebGL the renderer is ${fallback}`);
  await echoHello(dom);
  if (!(await dom.isVisible('.xterm-rows'))) throw new Error('the DOM renderer shows no rows');
  await endSession(dom);
  await plain.close();

  // The WebGL context lost: the DOM renderer takes over in place.
  await page.evaluate(() => {
    for (const canvas of document.querySelectorAll('#terminal canvas')) {
      const gl = canvas.getContext('webgl2');
      if (gl) gl.getExtension('WEBGL_lose_context').loseContext();
    }
  });
  await waitFor('the DOM renderer after the context loss', async () => (await page.evaluate(() => window.edgeshell.metrics.renderer)).startsWith('dom'), 15000);
  await echoHello(page);
  return renderer;
}

// Three megabytes pasted while the program floods the terminal (beyond what the room holds: the page
// keeps to its input credit): the program reads every byte of it (its
// SHA-256 matches), and the output keeps coming while the paste goes the other way.
async function largePasteWhileOutputFlows(page) {
  const text = `${Array.from({ length: 49152 }, (_, i) => `paste line ${String(i).padStart(5, '0')} ${'x'.repeat(48)}`).join('\n')}\n`;
  const hash = createHash('sha256').update(text).digest('hex');
  await page.evaluate((t) => navigator.clipboard.writeText(t), text);
  // xterm.js pastes line ends as CR; the terminal's ICRNL gives them back as LF.
  await typeLine(page, `clear; stty -icanon -echo; f=$(mktemp); (while [ -e $f ]; do seq -f 'flow %g' 1 100; sleep 0.02; done) & head -c ${text.length} | sha256sum > $f.sum; rm $f; wait; stty sane; echo "paste: $(cut -c1-64 $f.sum)"; rm $f.sum`);
  await waitForLine(page, (l) => l === 'flow 100', 'the output flowing');
  const before = await page.evaluate(() => window.edgeshell.current.shown);
  await page.keyboard.press('Control+Shift+V');
  const line = await waitForLine(page, (l) => l.startsWith('paste: ') && !l.includes('$('), 'the hash of what the program read', 60000);
  if (line !== `paste: ${hash}`) throw new Error(`the program read something else than the ${text.length} bytes pasted: ${line}`);
  const during = (await page.evaluate(() => window.edgeshell.current.shown)) - before;
  if (during < 2000) throw new Error(`only ${during} bytes of output arrived while the paste went in`);
  out({ figure: 'output shown while 3 MiB were pasted', value: during, unit: 'bytes' });
}

// Keyboard only: Ctrl+Shift+O leaves the terminal (which keeps Tab for the program) for the toolbar; Tab
// walks every control there, each with a visible focus ring, and then returns to the terminal; Enter
// opens the settings with the focus inside them, the arrow keys change the text size, Esc returns to
// the terminal, which takes typing again.
async function keyboardOnly(page) {
  const focused = () => page.evaluate(() => {
    const e = document.activeElement;
    const style = getComputedStyle(e);
    return { id: e.id, terminal: e.classList.contains('xterm-helper-textarea'), ring: style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) > 0 };
  });
  await page.click('#terminal');
  const controls = await page.$$eval('#toolbar button', (bs) => bs.filter((b) => b.offsetParent !== null && !b.disabled).map((b) => b.id));
  await page.keyboard.press('Control+Shift+O');
  const reached = [];
  for (;;) {
    const f = await focused();
    if (f.terminal) break;
    if (!f.ring) throw new Error(`#${f.id} has the focus without a visible ring`);
    reached.push(f.id);
    if (reached.length > controls.length) throw new Error(`Tab went past the toolbar: ${reached}`);
    await page.keyboard.press('Tab');
  }
  if (reached.join() !== controls.join()) throw new Error(`Tab reached ${reached}, not ${controls}`);
  await page.keyboard.press('Control+Shift+O');
  while ((await focused()).id !== 'settings-toggle') await page.keyboard.press('Tab');
  await page.keyboard.press('Enter');
  const inside = await focused();
  if (inside.id !== 'pref-font-size' || !inside.ring) throw new Error(`the open settings put the focus on ${JSON.stringify(inside)}`);
  const size = () => page.evaluate(() => window.edgeshell.term.options.fontSize);
  const was = await size();
  await page.keyboard.press('ArrowDown');
  await waitFor('a larger text size from the keyboard', async () => (await size()) > was);
  await page.keyboard.press('ArrowUp');
  await waitFor('the text size back', async () => (await size()) === was);
  await page.keyboard.press('Escape');
  if (!(await page.isHidden('#settings')) || !(await focused()).terminal) throw new Error('Esc did not close the settings and return to the terminal');
  await page.keyboard.type('echo keyboard-$((6*7))');
  await page.keyboard.press('Enter');
  await waitForLine(page, (l) => l.trim() === 'keyboard-42', 'typing after the keyboard walk');
}

// Alt / Option as Meta, on a Mac (the setting only matters there: elsewhere Alt is always Meta): on,
// Alt+b reaches the program as ESC b (a word back in a shell); off, Option is the keyboard's own (a
// real Mac types a character with it; this Linux keyboard none) and no ESC goes to the program.
async function altAsMeta(browser, base) {
  const context = await browser.newContext({ viewport: { width: 1100, height: 700 } });
  await context.addInitScript(() => Object.defineProperty(Navigator.prototype, 'platform', { get: () => 'MacIntel' }));
  const page = await context.newPage();
  await signIn(page, base, 'mac');
  await startSession(page);
  // What the program reads in 2 s after Alt+b then x, as `cat -v` shows it (ESC as ^[).
  const altB = async (probe) => {
    await typeLine(page, `clear; stty raw -echo; echo probe-${probe}-ready; timeout 2 cat -v; stty sane; echo; echo probe-${probe}-done`);
    await waitForLine(page, (l) => l.trim() === `probe-${probe}-ready`, 'the probe to read raw keys');
    await page.keyboard.press('Alt+b');
    await page.keyboard.press('x');
    const marker = `probe-${probe}-done`;
    await waitForLine(page, (l) => l.trim() === marker, 'the probe to end');
    const rows = await screen(page);
    const done = rows.findIndex((l) => l.trim() === marker);
    const from = rows.findIndex((l) => l.trim() === `probe-${probe}-ready`) + 1;
    return rows.slice(from, done).map((l) => l.trim()).filter(Boolean).join(' ');
  };
  const on = await altB(1);
  if (on !== '^[bx') throw new Error(`Alt+b then x with Alt as Meta sent ${on}`);
  await page.click('#settings-toggle');
  await page.click('#pref-alt-meta');
  await page.keyboard.press('Escape');
  const kept = await page.evaluate(() => JSON.parse(localStorage.getItem('edgeshell.prefs')).altIsMeta);
  if (kept !== false) throw new Error('the setting was not kept');
  const off = await altB(2);
  if (off !== 'x') throw new Error(`Alt+b then x without Alt as Meta sent ${off}`);
  await endSession(page);
  await context.close();
  return { on, off };
}

// A phone (390x844, touch): the extra-keys bar shows, every toolbar button fits on the screen, its Esc
// and Ctrl (then "c" from the keyboard) reach the program, and a finger's drag scrolls the terminal.
async function phoneLayout(browser, base, shot) {
  // At a device scale of 1: Chromium's emulated scale reports the host's device pixels to the WebGL
  // renderer's size observer, which then draws a 2x terminal into a 1x canvas.
  const context = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 1, isMobile: true, hasTouch: true });
  const page = await context.newPage();
  await signIn(page, base, 'pat');
  await startSession(page);
  if (!(await page.isVisible('#extra-keys'))) throw new Error('no extra-keys bar on a phone');
  const cut = await page.$$eval('#toolbar > button, #toolbar > span', (els) => els
    .filter((e) => e.offsetParent !== null)
    .map((e) => [e.id, e.getBoundingClientRect()])
    .filter(([, r]) => r.left < 0 || r.right > 390)
    .map(([id]) => id));
  if (cut.length) throw new Error(`toolbar items cut off at 390 px: ${cut}`);
  // Nothing makes the page wider than the phone (which would zoom it out and put taps off target).
  const wide = await page.evaluate(() => document.documentElement.scrollWidth);
  if (wide > 390) throw new Error(`the page is ${wide} px wide on a 390 px phone`);
  await page.tap('#more');
  if (!(await page.isVisible('#copy'))) throw new Error('the menu does not open');
  await page.tap('#more');
  await typeLine(page, 'clear; stty raw -echo; od -An -c -N1; stty sane');
  await new Promise((r) => setTimeout(r, 500));
  await page.tap('#extra-keys [aria-label="Esc"]');
  await waitForLine(page, (l) => l.trim() === '033', 'Esc from the extra keys');
  await typeLine(page, 'clear; stty raw -echo; od -An -c -N1; stty sane');
  await new Promise((r) => setTimeout(r, 500));
  await page.tap('#extra-keys [aria-label="Ctrl"]');
  await page.keyboard.type('c');
  await waitForLine(page, (l) => l.trim() === '003', 'Ctrl+C from the extra keys').catch(async (e) => {
    const state = await page.evaluate(() => [document.activeElement && document.activeElement.className, document.querySelector('[aria-label="Ctrl"]').getAttribute('aria-pressed')]);
    throw new Error(`${e.message}: focus and Ctrl ${state}; screen ${JSON.stringify((await screen(page)).filter(Boolean))}`);
  });
  // A finger dragged down the terminal scrolls its scrollback, not the page.
  await typeLine(page, 'clear; seq 1 300');
  await waitForLine(page, (l) => l.trim() === '300', 'the last of 300 lines');
  const at = await page.$eval('#terminal', (e) => { const r = e.getBoundingClientRect(); return { x: r.left + r.width / 2, y: r.top + r.height / 4 }; });
  const cdp = await context.newCDPSession(page);
  await cdp.send('Input.dispatchTouchEvent', { type: 'touchStart', touchPoints: [{ x: at.x, y: at.y }] });
  for (let i = 1; i <= 12; i += 1) await cdp.send('Input.dispatchTouchEvent', { type: 'touchMove', touchPoints: [{ x: at.x, y: at.y + i * 25 }] });
  await cdp.send('Input.dispatchTouchEvent', { type: 'touchEnd', touchPoints: [] });
  const scrolled = await waitFor('the drag to scroll the scrollback', () => page.evaluate(() => {
    const b = window.edgeshell.term.buffer.active;
    return b.viewportY < b.baseY && { up: b.baseY - b.viewportY, page: window.scrollY };
  }));
  if (scrolled.page !== 0) throw new Error(`the drag scrolled the page by ${scrolled.page} px`);
  await typeLine(page, `clear; EDGESHELL_DEMO_SPEED=25 ${SAMPLE_CLI} --task "add a --verbose flag"`);
  await waitForLine(page, (l) => l.includes('✔ Done'), 'the sample CLI on the phone', 30000);
  if (shot) await page.screenshot({ path: shot });
  await context.close();
}

// A sign-in outlives its ID tokens (2 minutes here): for 6 minutes two tabs of one browser stay
// attached to one session while the page renews the sign-in with refresh tokens, one tab at a time (the
// issuer revokes a sign-in whose refresh token is used twice: the harness checks it never did), and the
// room's attach-token refreshes keep working long after the first ID token expired. A session link
// opened in that browser needs no second sign-in; in a signed-out browser it survives the sign-in.
async function renewal(browser, base, minutes) {
  const started = Date.now();
  const context = await browser.newContext({ viewport: { width: 900, height: 600 } });
  const page = await context.newPage();
  context.on('console', (m) => { if (m.type() === 'error') out({ console: m.text() }); });
  await signIn(page, base, 'rita');
  const first = await page.evaluate(() => window.edgeshell.user.claims);
  if (first.exp - first.iat !== 120) throw new Error(`ID tokens live ${first.exp - first.iat} s here, not 120`);
  await startSession(page);
  const id = await page.textContent('#session-id');
  const tab = await context.newPage();
  await tab.goto(`${base}/#/s/${id}`);
  await waitLive(tab);
  if ((await tab.textContent('#session-id')) !== id) throw new Error('the new tab did not open the linked session');
  const elsewhere = await browser.newContext({ viewport: { width: 900, height: 600 } });
  const away = await elsewhere.newPage();
  await away.goto(`${base}/#/s/${id}`);
  await signInAtIssuer(away, base, 'rita');
  await waitLive(away);
  if ((await away.textContent('#session-id')) !== id) throw new Error('the session link was lost in the sign-in');
  await elsewhere.close();

  const tokens = new Set();
  const token = (p) => p.evaluate(async () => ((await window.edgeshell.auth.user()) || {}).token);
  while (Date.now() < started + minutes * 60_000) {
    for (const p of [page, tab]) {
      if (await p.isVisible('#signin-view')) {
        const why = await p.evaluate(() => [document.querySelector('#signin-message').textContent, window.edgeshell.auth.lastError, window.edgeshell.auth.renewals]);
        throw new Error(`a tab was signed out after ${(Date.now() - started) / 1000} s: ${JSON.stringify(why)}`);
      }
      const now = await status(p);
      if (now === 'ended' || now === 'runner-lost') throw new Error(`a tab's session went ${now}`);
      tokens.add(await token(p));
    }
    await new Promise((r) => setTimeout(r, 5000));
  }
  const renewals = await Promise.all([page, tab].map((p) => p.evaluate(() => window.edgeshell.auth.renewals)));
  // One renewal a minute with 2-minute tokens (a minute ahead of expiry).
  if (tokens.size < minutes - 1) throw new Error(`only ${tokens.size} ID tokens in ${minutes} minutes`);
  // Attached with a token minted after the first ID token and its leeway were long gone.
  const attachExpiry = await tab.evaluate(() => window.edgeshell.current.link.expiresAt);
  if (!(attachExpiry > first.exp + 120)) throw new Error(`the attach token (to ${attachExpiry}) was not refreshed after ${first.exp}`);
  for (const p of [page, tab]) await waitLive(p);
  await typeLine(tab, 'echo still-$((6*7))');
  await waitForLine(page, (l) => l.trim() === 'still-42', 'input from one tab, output in both');
  await endSession(page, id);
  await context.close();
  return { tokens: tokens.size, renewals: renewals[0] + renewals[1], minutes: (Date.now() - started) / 60_000 };
}

// The room asks for a fresh attach token before the current one expires (65 s tokens here: after 5 s);
// the page fetches one from the control plane and hands it over in band, and the expiry moves on.
async function tokenRefresh(page) {
  const first = await page.evaluate(() => window.edgeshell.current.link.expiresAt);
  if (!first) throw new Error('the welcome carried no expiry');
  await waitFor('an in-band refresh', () => page.evaluate((e) => window.edgeshell.current.link.expiresAt > e, first), 20000);
  if ((await status(page)) !== 'live') throw new Error('the session is not live after the refresh');
}

// The toolbar's Copy takes the terminal's selection to the clipboard; Paste types the clipboard into the
// session (bracketed paste when the program asked for it).
async function copyAndPaste(page) {
  await page.evaluate(() => window.edgeshell.term.selectAll());
  await page.click('#copy');
  const copied = await waitFor('the clipboard', async () => {
    const text = await page.evaluate(() => navigator.clipboard.readText());
    return text.includes('hello') ? text : null;
  });
  if (!copied.split('\n').some((l) => l.trim() === 'hello')) throw new Error('the copy lacks the output line');
  await page.evaluate(() => navigator.clipboard.writeText('echo pasted-$((2+3))'));
  await page.click('#paste');
  await page.click('#terminal');
  await page.keyboard.press('Enter');
  await waitForLine(page, (l) => l.trim() === 'pasted-5', 'the pasted command\'s output');
}

// The session writes a report to ~/outbox; the open drawer lists it by itself, and it downloads.
async function artifacts(page) {
  const session = await page.textContent('#session-id');
  const content = `the report of ${session}\n`.repeat(3);
  await typeLine(page, `clear; for i in 1 2 3; do echo "the report of ${session}"; done > ~/outbox/report.txt`);
  await page.click('#artifacts-toggle');
  await waitFor('the artifact in the list', async () => {
    const items = await page.$$eval('#artifact-list li', (els) => els.map((e) => e.textContent));
    if (items.some((t) => /unavailable|error|denied|no route|no such/i.test(t) && !t.includes('report.txt'))) {
      throw new Error(`the artifact list says: ${items}`);
    }
    return items.some((t) => t.includes('outbox/report.txt'));
  }, 20000);
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('.artifact button')]);
  const saved = await fs.readFile(await download.path(), 'utf8');
  if (saved !== content) throw new Error(`the download differs from the upload (${saved.length} bytes)`);
  if (download.suggestedFilename() !== 'report.txt') throw new Error(`saved as ${download.suggestedFilename()}`);
  await page.click('#artifacts-toggle');
}

async function sampleCli(page, screenshot) {
  await typeLine(page, `clear; EDGESHELL_DEMO_SPEED=25 ${SAMPLE_CLI} --task "add a --verbose flag"`);
  await waitForLine(page, (l) => l.includes('✔ Done'), 'the sample CLI to finish', 30000);
  const rows = await screen(page);
  for (const stage of ['Reading the repository', 'Planning', 'Editing', 'Running tests']) {
    if (!rows.some((l) => l.includes(stage))) throw new Error(`the progress lacks "${stage}"`);
  }
  if (!rows.some((l) => /test result: ok\. \d+ passed/.test(l))) throw new Error('no test summary rendered');
  // Spinner frames are overwritten in place (\r): no line may keep one.
  if (rows.some((l) => /^\s+[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏]/.test(l))) throw new Error('a spinner frame was left on screen');
  if (screenshot) await page.screenshot({ path: screenshot });
}

async function resize(page) {
  await page.setViewportSize({ width: 760, height: 460 });
  const size = await waitFor('the terminal to refit', () => page.evaluate(() => {
    const t = window.edgeshell.term;
    return t.cols < 100 ? { cols: t.cols, rows: t.rows } : null;
  }));
  await typeLine(page, 'stty size');
  await waitForLine(page, (l) => l.trim() === `${size.rows} ${size.cols}`, `stty size = ${size.rows} ${size.cols}`);
  await page.setViewportSize({ width: 1100, height: 700 });
}

async function cutInTheMiddle(page, proxy) {
  const N = 30000;
  await typeLine(page, 'clear');
  await waitFor('a cleared screen', async () => (await screen(page)).filter((l) => l.trim()).length <= 1);
  await page.evaluate(() => { window.edgeshell.metrics.statuses = []; });
  // Cut after 40 KB of the ~170 KB output reached the page, and refuse reconnects for 1.5 s.
  proxy.armCut(40_000, 1500);
  await typeLine(page, `seq 1 ${N}; echo END$((6*7))`);
  await waitForLine(page, (l) => l.trim() === 'END42', 'the end of the output', 30000);
  if (proxy.cuts === 0) throw new Error('the proxy never cut the connection');
  const rows = await screen(page);
  const numbers = rows.map((l) => l.trim()).filter((l) => /^\d+$/.test(l)).map(Number);
  const expected = Array.from({ length: N }, (_, i) => i + 1);
  if (numbers.length !== N || numbers.some((n, i) => n !== expected[i])) {
    const firstBad = numbers.findIndex((n, i) => n !== expected[i]);
    throw new Error(`the output is not 1..${N} exactly once: ${numbers.length} lines, first mismatch at ${firstBad} (${numbers[firstBad]})`);
  }
  const statuses = await page.evaluate(() => window.edgeshell.metrics.statuses);
  if (!statuses.includes('resuming')) throw new Error(`the page never showed "resuming": ${statuses}`);
  return statuses;
}

async function regionLost(page) {
  const region = await page.textContent('#status-region');
  await ask('stop-region', { region });
  const stopped = Date.now();
  await page.waitForSelector('#overlay', { state: 'visible', timeout: 10000 });
  const lostMs = Date.now() - stopped;
  const message = await page.textContent('#overlay-message');
  if (!/stopped answering|lost/i.test(message)) throw new Error(`unexpected message: ${message}`);
  if ((await status(page)) !== 'runner-lost') throw new Error(`status is ${await status(page)}, not runner-lost`);
  // The page offers a new session, which lands in the other region.
  await page.click('#overlay-new');
  await waitLive(page);
  const newRegion = await page.textContent('#status-region');
  if (newRegion === region) throw new Error(`the new session landed in the lost region ${region}`);
  await echoHello(page);
  await ask('start-region', { region });
  return { region, newRegion, lostMs };
}

async function main() {
  const proxy = await new CutProxy(Number(edge.port)).start();
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
  try {
    const context = await browser.newContext({ viewport: { width: 1100, height: 700 } });
    await context.grantPermissions(['clipboard-read', 'clipboard-write', 'notifications']);
    const page = await context.newPage();
    page.on('pageerror', (e) => out({ pageerror: e.message }));
    // Anything the page's policy blocks (Chromium reports each on the console) fails the run at the end.
    const violations = [];
    page.on('console', (m) => { if (m.text().includes('Content Security Policy')) violations.push(m.text()); });
    const base = `http://127.0.0.1:${proxy.port}`;
    const step = async (name, f) => {
      const started = Date.now();
      const result = await f();
      out({ step: name, ms: Date.now() - started });
      return result;
    };
    let firebaseChunk = false;
    page.on('request', (r) => { firebaseChunk ||= r.url().includes('/chunks/firebase-'); });
    await step('sign in with the dev issuer', () => signIn(page, base));
    if (firebaseChunk) throw new Error('the OIDC page loaded the Firebase chunk');
    // Runs beside the other steps until the network cut (which would cut its tabs too).
    const renewed = step('sign-in renewed silently for 6 minutes', () => renewal(browser, base, 6));
    renewed.catch(() => {}); // awaited below; a failure there fails the run
    await step('firebase sign-in loaded on demand', () => firebaseSignIn(context, base));
    const times = await step('start sessions', () => sessionStartTimes(page, 7));
    const p50 = (xs) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];
    out({ figure: 'session start p50 (click -> first prompt byte)', value: p50(times.map((t) => t.total)), unit: 'ms' });
    out({ figure: 'of which mint p50 (POST /api/sessions)', value: p50(times.map((t) => t.mint)), unit: 'ms' });
    out({ figure: 'session start max', value: Math.max(...times.map((t) => t.total)), unit: 'ms' });
    await step('templates: the catalogue, a variable and a limit reach the program', () => templates(page));
    await step('echo hello', () => echoHello(page));
    await step('token refreshed in band', () => tokenRefresh(page));
    await step('reload continues at the exact byte', () => reloadResumes(page));
    await step('a fresh attach shows the right screen', () => freshAttach(browser, page, base));
    await step('lifetime: countdown, extend, end reasons', () => lifetime(context, page, base));
    await step('copy and paste', () => copyAndPaste(page));
    const renderer = await step('terminal features: OSC 52, keys, widths, search, bell, renderers', () => terminalFeatures(browser, context, page, base));
    out({ figure: 'renderer', value: renderer });
    const phoneShot = process.env.EDGESHELL_SCREENSHOT && process.env.EDGESHELL_SCREENSHOT.replace(/\.png$/, '-phone.png');
    await step('a phone: extra keys, touch scrolling and a toolbar that fits', () => phoneLayout(browser, base, phoneShot));
    await step('keyboard only: the toolbar, the settings, visible focus', () => keyboardOnly(page));
    const alt = await step('Alt as Meta, a setting (on a Mac)', () => altAsMeta(browser, base));
    out({ figure: 'Alt+b with the setting on / off', value: `${alt.on} / ${alt.off}` });
    await step('artifacts listed and downloaded', () => artifacts(page));
    await step('the page policy holds', () => pagePolicy(context, page, base));
    await step('sample CLI progress', () => sampleCli(page, process.env.EDGESHELL_SCREENSHOT));
    await step('resize follows stty size', () => resize(page));
    const renewals = await renewed;
    out({ figure: 'ID tokens seen in 6 minutes (2-minute lifetime)', value: renewals.tokens });
    out({ figure: 'renewals by the two tabs', value: renewals.renewals });
    const statuses = await step('cut in the middle, shown exactly once', () => cutInTheMiddle(page, proxy));
    out({ figure: 'statuses through the cut', value: statuses.join(' > ') });
    if (process.env.EDGESHELL_NO_REGION_STOP !== '1') {
      const lost = await step('region lost, new session elsewhere', () => regionLost(page));
      out({ figure: 'region stop -> page shows runner lost', value: lost.lostMs, unit: 'ms' });
    }
    if (violations.length) throw new Error(`the page's policy blocked: ${violations.join(' | ')}`);
    out({ done: true });
  } finally {
    await browser.close();
    proxy.close();
  }
}

main().then(() => process.exit(0), (e) => {
  out({ error: e.stack || String(e) });
  process.exit(1);
});
