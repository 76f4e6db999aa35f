// The terminal itself: xterm.js with its maintained addons, set up for the programs people run here
// (AI coding CLIs and full-screen tools) and for phones. Everything that is a choice of the person
// (font size, scrollback, Alt as Meta, the renderer, the screen reader mode) is a preference kept in
// this browser (localStorage).
//
// - Rendering: the WebGL renderer (`@xterm/addon-webgl`), falling back to the DOM renderer when WebGL
//   cannot start or its context is lost; Unicode 11 widths (`@xterm/addon-unicode11`), so emoji and
//   CJK take the cells the program counted; a bundled font (JetBrains Mono, `@fontsource`) loaded before
//   the terminal measures its cells, with a line height that leaves room for underscores.
// - Clipboard: OSC 52 from the program writes the browser's clipboard (`@xterm/addon-clipboard`); a
//   program may not read it (that would hand it whatever the person copied elsewhere).
// - Keys: Ctrl+Shift+C copies, Ctrl+Shift+V is the browser's own paste (once; bracketed when the
//   program asked), Ctrl+C stays an interrupt, Shift+Enter sends ESC CR (Meta+Enter: a new line in the
//   coding CLIs, harmless to a shell), Ctrl+Shift+O leaves the terminal for the toolbar (Tab is the
//   program's). xterm.js 6.0 has no kitty keyboard protocol or CSI u.
// - Attention: the bell and OSC 9 / OSC 777 notifications raise a badge in the title while the page is
//   not looked at and, with permission, a Web Notification.
// - Search in the scrollback (`@xterm/addon-search`).

import { Terminal } from '@xterm/xterm';
import { ClipboardAddon } from '@xterm/addon-clipboard';
import { FitAddon } from '@xterm/addon-fit';
import { SearchAddon } from '@xterm/addon-search';
import { SerializeAddon } from '@xterm/addon-serialize';
import { Unicode11Addon } from '@xterm/addon-unicode11';
import { WebLinksAddon } from '@xterm/addon-web-links';
import { WebglAddon } from '@xterm/addon-webgl';
import { touchScroll } from './keys.js';
import '@fontsource/jetbrains-mono/latin-400.css';
import '@fontsource/jetbrains-mono/latin-700.css';

const PREFS_KEY = 'edgeshell.prefs';
export const DEFAULT_PREFS = { fontSize: 14, scrollback: 10000, altIsMeta: true, renderer: 'webgl', screenReader: false };
export const FONT_SIZES = [10, 11, 12, 13, 14, 15, 16, 18, 20, 22, 24];
export const MAX_SCROLLBACK = 200000;
const FONT = '"JetBrains Mono", "DejaVu Sans Mono", Menlo, Consolas, monospace';
// ESC CR: what Meta+Enter sends, a new line in Claude Code, Codex and Gemini CLI.
const SHIFT_ENTER = '\x1b\r';

/** This browser's terminal preferences, defaults filled in and out-of-range values dropped. */
export function loadPrefs() {
  let kept = {};
  try {
    kept = JSON.parse(localStorage.getItem(PREFS_KEY) || '{}') || {};
  } catch {
    kept = {};
  }
  const prefs = { ...DEFAULT_PREFS };
  if (FONT_SIZES.includes(kept.fontSize)) prefs.fontSize = kept.fontSize;
  if (Number.isInteger(kept.scrollback) && kept.scrollback >= 0 && kept.scrollback <= MAX_SCROLLBACK) prefs.scrollback = kept.scrollback;
  for (const flag of ['altIsMeta', 'screenReader']) if (typeof kept[flag] === 'boolean') prefs[flag] = kept[flag];
  if (kept.renderer === 'dom' || kept.renderer === 'webgl') prefs.renderer = kept.renderer;
  return prefs;
}

export function savePrefs(prefs) {
  try {
    localStorage.setItem(PREFS_KEY, JSON.stringify(prefs));
  } catch {
    // Storage disabled: the preferences last as long as the page.
  }
}

/** The bell, OSC 9 and OSC 777 while the page is not looked at: a title badge and a notification. */
class Attention {
  constructor() {
    this.unread = 0;
    this.title = document.title;
    const seen = () => {
      if (document.hidden || !document.hasFocus()) return;
      this.unread = 0;
      document.title = this.title;
    };
    document.addEventListener('visibilitychange', seen);
    window.addEventListener('focus', seen);
  }

  /** Something in the terminal asks for the person: `body` says what, when the program said. */
  raise(body) {
    if (!document.hidden && document.hasFocus()) return;
    this.unread += 1;
    document.title = `(${this.unread}) ${this.title}`;
    if (typeof Notification !== 'undefined' && Notification.permission === 'granted') {
      try {
        new Notification('edgeshell', { body: body || 'The session needs your attention.', tag: 'edgeshell-attention' });
      } catch {
        // Some browsers allow notifications from service workers only.
      }
    }
  }
}

/** OSC 777 `notify;title;body` and OSC 9 `text` (not ConEmu's `9;4;...` progress). */
function notification(ident, data) {
  if (ident === 777) {
    const [kind, title, ...body] = data.split(';');
    return kind === 'notify' ? [title, body.join(';')].filter(Boolean).join(': ') : null;
  }
  return /^4;/.test(data) ? null : data;
}

export class TerminalView {
  /**
   * @param {HTMLElement} container
   * @param {object} o
   * @param {object} o.prefs  from loadPrefs()
   * @param {() => void} o.copy  copies the selection
   * @param {(renderer: string) => void} o.onRenderer  which renderer draws, and why it changed
   */
  constructor(container, { prefs, copy, onRenderer }) {
    this.prefs = prefs;
    this.onRenderer = onRenderer;
    this.attention = new Attention();
    this.term = new Terminal({
      cursorBlink: true,
      fontFamily: FONT,
      fontSize: prefs.fontSize,
      // Room under the baseline: at 1.0 the underscore of some fonts is clipped by the next row.
      lineHeight: 1.2,
      scrollback: prefs.scrollback,
      macOptionIsMeta: prefs.altIsMeta,
      screenReaderMode: prefs.screenReader,
      allowProposedApi: true,
      theme: { background: '#0b0f14', foreground: '#d7dde5', cursor: '#5cc8ff', selectionBackground: '#2a4a6b' },
    });
    this.fit = new FitAddon();
    this.serialize = new SerializeAddon();
    this.search = new SearchAddon();
    for (const addon of [this.fit, this.serialize, this.search, new WebLinksAddon(), new Unicode11Addon()]) {
      this.term.loadAddon(addon);
    }
    this.term.unicode.activeVersion = '11';
    // Programs may write the clipboard (a CLI's "copy"), never read it.
    this.term.loadAddon(new ClipboardAddon(undefined, {
      readText: () => '',
      writeText: (_selection, text) => navigator.clipboard.writeText(text),
    }));
    this.term.onBell(() => this.attention.raise('The terminal rang its bell.'));
    for (const ident of [9, 777]) {
      this.term.parser.registerOscHandler(ident, (data) => {
        const text = notification(ident, data);
        if (text !== null) this.attention.raise(text);
        return text !== null;
      });
    }
    this.term.attachCustomKeyEventHandler((e) => {
      if (e.type !== 'keydown') return true;
      if (e.key === 'Enter' && e.shiftKey && !e.ctrlKey && !e.altKey && !e.metaKey) {
        e.preventDefault();
        this.term.input(SHIFT_ENTER, true);
        return false;
      }
      if (!e.ctrlKey || !e.shiftKey) return true;
      if (e.code === 'KeyC') {
        e.preventDefault();
        copy();
        return false;
      }
      // Ctrl+Shift+V: the browser's paste event follows, and xterm.js pastes it once.
      if (e.code === 'KeyV') return false;
      if (e.code === 'KeyF') {
        e.preventDefault();
        this.onSearchKey?.();
        return false;
      }
      if (e.code === 'KeyO') {
        e.preventDefault();
        this.onLeaveKey?.();
        return false;
      }
      return true;
    });
    this.term.open(container);
    touchScroll(this.term.element);
    this.renderer = 'dom';
    if (prefs.renderer === 'webgl') this.useWebgl();
    else onRenderer('dom');
    new ResizeObserver(() => this.fitNow()).observe(container);
  }

  /** The WebGL renderer, or the DOM renderer when WebGL fails to start or loses its context. */
  useWebgl() {
    try {
      const webgl = new WebglAddon();
      webgl.onContextLoss(() => {
        webgl.dispose();
        this.renderer = 'dom';
        this.onRenderer('dom (the WebGL context was lost)');
      });
      this.term.loadAddon(webgl);
      this.renderer = 'webgl';
      this.onRenderer('webgl');
    } catch (e) {
      this.renderer = 'dom';
      this.onRenderer(`dom (WebGL unavailable: ${e.message})`);
    }
  }

  fitNow() {
    if (this.term.element && this.term.element.offsetParent !== null) this.fit.fit();
  }

  /** Applies changed preferences to the open terminal. */
  apply(prefs) {
    this.prefs = prefs;
    this.term.options.fontSize = prefs.fontSize;
    this.term.options.scrollback = prefs.scrollback;
    this.term.options.macOptionIsMeta = prefs.altIsMeta;
    this.term.options.screenReaderMode = prefs.screenReader;
    this.fitNow();
  }

  /** Finds `text` in the scrollback, forwards or backwards; true when found. */
  find(text, backwards = false) {
    const options = { decorations: { matchOverviewRuler: '#5cc8ff', activeMatchColorOverviewRuler: '#f5c451', activeMatchBackground: '#f5c451' } };
    return backwards ? this.search.findPrevious(text, options) : this.search.findNext(text, options);
  }

  clearSearch() {
    this.search.clearDecorations();
    this.term.clearSelection();
  }
}

/** Waits for the bundled font, so the terminal measures its cells with it (a second at most). */
export async function fontReady(size) {
  const load = document.fonts.load(`${size}px "JetBrains Mono"`).catch(() => []);
  await Promise.race([load, new Promise((r) => setTimeout(r, 1000))]);
}
