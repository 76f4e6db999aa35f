// One live session in the page: the WebSocket, xterm.js and the protocol engine (the core's
// browser_link, compiled to wasm) wired together. The engine decides everything protocol-related (what
// to send, which output is new, when to ack, what a close means, how long to back off); this class only
// moves bytes and runs timers (what was typed while disconnected, and the size, are the engine's to
// send after the next welcome).

import { Link } from '../build/client/client.js';

const TICK_MS = 1000;

export class TerminalSession {
  /**
   * @param {object} o
   * @param {{session_id: string, region: string, token: string}} o.session
   * @param {import('@xterm/xterm').Terminal} o.term
   * @param {() => Promise<string>} o.freshToken  a new attach token from the control plane
   * @param {(state: object) => void} o.onChange  status bar updates
   * @param {(stop: {message: string, next: string}) => void} o.onStop
   * @param {() => void} [o.onFirstOutput]  the first output byte was shown (session start time)
   */
  constructor({ session, term, freshToken, onChange, onStop, onFirstOutput }) {
    this.session = session;
    this.term = term;
    this.freshToken = freshToken;
    this.onChange = onChange;
    this.onStop = onStop;
    this.onFirstOutput = onFirstOutput;
    this.link = new Link(session.session_id, session.token);
    this.ws = null;
    this.stopped = false;
    this.timer = setInterval(() => this.tick(), TICK_MS);
    this.inputSub = term.onData((text) => this.input(text));
    this.binarySub = term.onBinary((text) => this.input(text));
    this.resizeSub = term.onResize(({ cols, rows }) => this.send(this.link.resize(cols, rows)));
    this.link.resize(term.cols, term.rows);
    this.connect();
  }

  connect() {
    if (this.stopped) return;
    const origin = location.origin.replace(/^http/, 'ws');
    let ws;
    try {
      ws = new WebSocket(origin + this.link.path(), this.link.protocols());
    } catch (e) {
      this.closed(1006);
      return;
    }
    ws.binaryType = 'arraybuffer';
    this.ws = ws;
    ws.onopen = () => {
      this.link.opened(Date.now());
      this.changed();
    };
    ws.onmessage = (event) => {
      if (this.ws !== ws) return;
      if (typeof event.data === 'string') {
        if (this.link.onText(event.data, Date.now()) !== undefined) this.changed();
        return;
      }
      let updates;
      try {
        updates = this.link.onBinary(new Uint8Array(event.data), Date.now());
      } catch (e) {
        console.warn('edgeshell: protocol error, reconnecting:', e.message);
        this.drop(ws);
        return;
      }
      this.apply(updates);
    };
    ws.onclose = (event) => {
      if (this.ws === ws) this.closed(event.code);
    };
  }

  apply(updates) {
    for (const u of updates) {
      switch (u.kind) {
        case 'output':
          this.term.write(u.data);
          if (this.onFirstOutput) {
            this.onFirstOutput();
            this.onFirstOutput = null;
          }
          break;
        case 'send':
          this.send(u.data);
          break;
        case 'gap':
          this.term.write(`\r\n\x1b[33m[edgeshell: ${u.bytes} bytes of output were lost while disconnected]\x1b[0m\r\n`);
          break;
        case 'refresh':
          this.refresh();
          break;
        default:
          break;
      }
    }
    this.changed();
  }

  async refresh() {
    try {
      const token = await this.freshToken();
      this.send(this.link.refresh(token));
    } catch (e) {
      // The room closes with token_expired if no refresh arrives; the close path fetches a token again.
      console.warn('edgeshell: token refresh failed:', e.message);
    }
  }

  input(text) {
    if (this.stopped) return;
    for (const message of this.link.input(text)) this.send(message);
  }

  send(message) {
    if (message && this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(message);
  }

  tick() {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return;
    let ping;
    try {
      ping = this.link.tick(Date.now());
    } catch (e) {
      console.warn('edgeshell:', e.message);
      this.drop(this.ws);
      return;
    }
    if (ping) this.ws.send(ping);
  }

  /** Abandons a connection that broke the protocol or went silent, as if the network dropped it. */
  drop(ws) {
    ws.onclose = null;
    ws.onmessage = null;
    try {
      ws.close();
    } catch {
      // Already closing.
    }
    if (this.ws === ws) this.closed(1006);
  }

  async closed(code) {
    this.ws = null;
    if (this.stopped) return;
    const after = this.link.closed(code, Math.random());
    this.apply(after.updates);
    if (after.after === 'reconnect') {
      this.changed({ retryIn: after.delay_ms });
      this.retry = setTimeout(() => this.connect(), after.delay_ms);
    } else if (after.after === 'token') {
      try {
        this.link.newToken(await this.freshToken());
        this.connect();
      } catch (e) {
        this.stop({ message: e.message, next: e.code === 'session_not_found' ? 'new-session' : 'give-up' });
      }
    } else {
      this.stop({ message: after.message, next: after.next });
    }
  }

  changed(extra = {}) {
    this.onChange({
      status: this.link.status,
      rtt: this.link.rttMs,
      region: this.session.region,
      session: this.session.session_id,
      offset: this.link.offset,
      ...extra,
    });
  }

  stop(reason) {
    if (this.stopped) return;
    this.dispose();
    this.changed();
    this.onStop(reason);
  }

  /** Closes the connection and stops all timers (leaving the page or switching sessions). */
  dispose() {
    this.stopped = true;
    clearInterval(this.timer);
    clearTimeout(this.retry);
    this.inputSub.dispose();
    this.binarySub.dispose();
    this.resizeSub.dispose();
    if (this.ws) {
      this.ws.onclose = null;
      this.ws.close(1000);
      this.ws = null;
    }
  }
}
