// One live session in the page: the WebSocket, xterm.js and the protocol engine (the core's
// browser_link state machine, compiled to wasm) wired together. The engine decides everything
// protocol-related (when to connect and with which credential, what to send, which output is new, when
// to ack and ping, what a close means, how long to back off); this class feeds it what happened with
// the time, carries out the effects it returns, and keeps the one timer it asks for.

import { Link } from '../build/client/client.js';

export class TerminalSession {
  /**
   * @param {object} o
   * @param {{session_id: string, region: string, token: string}} o.session
   * @param {import('@xterm/xterm').Terminal} o.term
   * @param {() => Promise<string>} o.freshToken  a new attach token from the control plane
   * @param {(state: object) => void} o.onChange  status bar updates
   * @param {(stop: {message: string, next: string}) => void} o.onStop
   * @param {() => void} [o.onFirstOutput]  the first output byte was shown (session start time)
   * @param {(at: number) => void} [o.onDeadline]  when the session ends (epoch seconds), on attach and extension
   * @param {{ticket: string, offset: number, screen: string}} [o.resume]  what this tab kept before it
   *   reloaded: the seat's ticket, the offset of the output it had shown, and that screen
   * @param {(text: string) => string} [o.inputFilter]  applied to typed text first (sticky modifiers)
   */
  constructor({ session, term, freshToken, onChange, onStop, onFirstOutput, onDeadline, resume, inputFilter }) {
    this.session = session;
    this.term = term;
    this.freshToken = freshToken;
    this.onChange = onChange;
    this.onStop = onStop;
    this.onFirstOutput = onFirstOutput;
    this.onDeadline = onDeadline;
    // What xterm.js has parsed: the offset of the output on screen, and writes still being parsed.
    this.shown = resume ? resume.offset : 0;
    this.parsing = 0;
    // While a kept screen is written back, the terminal's answers to the queries in it (cursor
    // position, focus, colours) are not the person's typing: they never reach the program.
    this.replaying = 0;
    if (resume) {
      this.replaying += 1;
      term.write(resume.screen, () => { this.replaying -= 1; });
      this.link = Link.resuming(session.session_id, session.token, resume.ticket, resume.offset, Math.random(), Date.now());
    } else {
      this.link = new Link(session.session_id, session.token, Math.random(), Date.now());
    }
    this.ws = null;
    this.timer = null;
    this.stopped = false;
    this.lastClose = null;
    // Screens drawn from the room's snapshots (fresh attaches), for the status and the tests.
    this.snapshots = 0;
    const typed = (text) => {
      if (!this.replaying) this.apply(this.link.input(inputFilter ? inputFilter(text) : text, Date.now()));
    };
    this.inputSub = term.onData(typed);
    this.binarySub = term.onBinary((bytes) => { if (!this.replaying) this.apply(this.link.input(bytes, Date.now())); });
    this.resizeSub = term.onResize(({ cols, rows }) => this.apply(this.link.resize(cols, rows, Date.now())));
    this.apply(this.link.resize(term.cols, term.rows, Date.now()));
    // The engine's first timeout is due at once: it asks for the first connection.
    this.apply(this.link.handleTimeout(Date.now()));
  }

  /** Carries out the engine's effects, then re-arms the timer for its next deadline. */
  apply(effects) {
    if (this.stopped) return;
    let changed = false;
    let extra = {};
    for (const e of effects) {
      switch (e.kind) {
        case 'connect':
          this.connect(e.path, e.protocols);
          break;
        case 'output': {
          const end = this.link.offset;
          this.parsing += 1;
          this.term.write(e.data, () => {
            this.shown = end;
            this.parsing -= 1;
          });
          changed = true; // the status bar shows the offset
          if (this.onFirstOutput) {
            this.onFirstOutput();
            this.onFirstOutput = null;
          }
          break;
        }
        case 'screen': {
          // A fresh attach: the screen as it stands, drawn on a reset terminal; what xterm.js answers
          // while drawing it is not typing (see `replaying`).
          if (e.first) {
            this.term.reset();
            this.snapshots += 1;
          }
          const end = this.link.offset;
          this.replaying += 1;
          this.parsing += 1;
          this.term.write(e.data, () => {
            this.replaying -= 1;
            this.parsing -= 1;
            this.shown = end;
          });
          break;
        }
        case 'deadline':
          if (this.onDeadline) this.onDeadline(e.at);
          break;
        case 'closing':
          this.lastClose = e.reason;
          changed = true;
          break;
        case 'send':
        case 'sendText':
          this.send(e.kind === 'send' ? e.data : e.text);
          break;
        case 'notice':
          this.term.write(`\r\n\x1b[33m[edgeshell: ${e.text}]\x1b[0m\r\n`);
          break;
        case 'gap':
          this.term.write(`\r\n\x1b[33m[edgeshell: ${e.bytes} bytes of output were lost while disconnected]\x1b[0m\r\n`);
          break;
        case 'refresh':
          this.refresh();
          break;
        case 'abandon':
          console.warn('edgeshell: connection abandoned, reconnecting:', e.reason);
          this.abandon();
          break;
        case 'reconnectIn':
          extra = { retryIn: e.ms };
          changed = true;
          break;
        case 'needToken':
          this.newToken();
          break;
        case 'stop':
          this.stop({ message: e.message, next: e.next });
          return;
        default:
          // status, rtt, exited, closing: the status bar shows them.
          changed = true;
          break;
      }
    }
    if (changed) this.changed(extra);
    this.arm();
  }

  /** One timer, at the engine's next deadline. */
  arm() {
    clearTimeout(this.timer);
    const at = this.link.pollTimeout();
    if (at === undefined || this.stopped) return;
    this.timer = setTimeout(() => this.apply(this.link.handleTimeout(Date.now())), Math.max(0, at - Date.now()));
  }

  connect(path, protocols) {
    const origin = location.origin.replace(/^http/, 'ws');
    let ws;
    try {
      ws = new WebSocket(origin + path, protocols);
    } catch (e) {
      this.apply(this.link.closed(1006, Date.now()));
      return;
    }
    ws.binaryType = 'arraybuffer';
    this.ws = ws;
    ws.onopen = () => {
      if (this.ws === ws) this.apply(this.link.opened(Date.now()));
    };
    ws.onmessage = (event) => {
      if (this.ws !== ws) return;
      const now = Date.now();
      if (typeof event.data === 'string') this.apply(this.link.onText(event.data, now));
      else this.apply(this.link.onBinary(new Uint8Array(event.data), now));
    };
    ws.onclose = (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.apply(this.link.closed(event.code, Date.now()));
    };
  }

  async refresh() {
    try {
      const token = await this.freshToken();
      this.apply(this.link.refresh(token, Date.now()));
    } catch (e) {
      // The room closes with token_expired if no refresh arrives; the engine then asks for a token.
      console.warn('edgeshell: token refresh failed:', e.message);
    }
  }

  async newToken() {
    try {
      const token = await this.freshToken();
      this.apply(this.link.newToken(token, Date.now()));
    } catch (e) {
      this.stop({ message: e.message, next: e.code === 'session_not_found' ? 'new-session' : 'give-up' });
    }
  }

  send(message) {
    if (message !== undefined && this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(message);
  }

  /** Drops the connection without waiting for its close; the engine has already planned the next. */
  abandon() {
    const ws = this.ws;
    this.ws = null;
    if (!ws) return;
    ws.onclose = null;
    ws.onmessage = null;
    try {
      ws.close();
    } catch {
      // Already closing.
    }
  }

  /**
   * What a reload needs to continue this seat exactly: the ticket, the offset of the output on screen
   * and that screen (serialized by `serialize`), or null while xterm.js is still parsing output (the
   * screen would not match the offset) or before the room welcomed the link.
   */
  resumePoint(serialize) {
    const ticket = this.link.resumeTicket;
    if (!ticket || this.parsing > 0 || this.replaying > 0 || this.stopped) return null;
    return { ticket, offset: this.shown, screen: serialize() };
  }

  changed(extra = {}) {
    this.onChange({
      lastClose: this.link.status === 'live' ? null : this.lastClose,
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

  /** Closes the connection and stops the timer (leaving the page or switching sessions). */
  dispose() {
    this.stopped = true;
    clearTimeout(this.timer);
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
