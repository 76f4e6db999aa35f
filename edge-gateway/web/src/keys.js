// Phones and tablets: the extra-keys bar (Esc, Tab, Ctrl, Alt, arrows, `|`, `~`, `/`, `-`), whose keys
// go through the terminal's input (`term.input`), so the protocol engine sends them like typing, and
// the page's height following the on-screen keyboard (`visualViewport`), so the prompt stays visible,
// and a finger's drag scrolling the terminal (`touchScroll`).
//
// Ctrl and Alt are sticky: tapped, they apply to the next key, from the bar or the on-screen keyboard
// (Ctrl+C is "Ctrl", then "c"), then release. Arrows follow the program's cursor-key mode.

// [label, what it sends (or a modifier or arrow), the name a screen reader says]
const KEYS = [
  ['Esc', '\x1b', 'Esc'], ['Tab', '\t', 'Tab'], ['Ctrl', 'ctrl', 'Ctrl'], ['Alt', 'alt', 'Alt'],
  ['←', 'left', 'Left'], ['↑', 'up', 'Up'], ['↓', 'down', 'Down'], ['→', 'right', 'Right'],
  ['|', '|', '|'], ['~', '~', '~'], ['/', '/', '/'], ['-', '-', '-'],
];
const ARROWS = { up: 'A', down: 'B', right: 'C', left: 'D' };

/** `text` with Ctrl applied: a letter or one of `@[\]^_?` becomes its control character. */
export function withCtrl(text) {
  if (text.length !== 1) return text;
  const c = text.toUpperCase().charCodeAt(0);
  if (c >= 0x40 && c <= 0x5f) return String.fromCharCode(c - 0x40);
  if (text === '?') return '\x7f';
  if (text === ' ') return '\x00';
  return text;
}

export class ExtraKeys {
  /**
   * @param {HTMLElement} bar  where the keys go
   * @param {() => import('@xterm/xterm').Terminal} term  the terminal keys are typed into
   */
  constructor(bar, term) {
    this.term = term;
    this.ctrl = false;
    this.alt = false;
    this.buttons = {};
    for (const [label, key, name] of KEYS) {
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'key';
      b.textContent = label;
      b.dataset.key = key;
      if (key === 'ctrl' || key === 'alt') b.setAttribute('aria-pressed', 'false');
      b.setAttribute('aria-label', name);
      // Keep the focus (and the on-screen keyboard) in the terminal.
      b.addEventListener('pointerdown', (e) => e.preventDefault());
      b.addEventListener('click', () => this.press(key));
      this.buttons[key] = b;
      bar.append(b);
    }
  }

  press(key) {
    const term = this.term();
    if (!term) return;
    if (key === 'ctrl' || key === 'alt') {
      this[key] = !this[key];
      this.buttons[key].setAttribute('aria-pressed', String(this[key]));
      // The next key comes from the on-screen keyboard, which types into the terminal.
      term.focus();
      return;
    }
    let data = key;
    if (ARROWS[key]) data = `\x1b${term.modes.applicationCursorKeysMode ? 'O' : '['}${ARROWS[key]}`;
    term.input(data, true);
    term.focus();
  }

  /** Applies armed modifiers to typed text (the terminal's input filter), then releases them. */
  filter(text) {
    if (!this.ctrl && !this.alt) return text;
    let out = this.ctrl ? withCtrl(text) : text;
    if (this.alt) out = `\x1b${out}`;
    this.ctrl = false;
    this.alt = false;
    for (const key of ['ctrl', 'alt']) this.buttons[key].setAttribute('aria-pressed', 'false');
    return out;
  }
}

/** Keeps `--app-height` at the visible viewport's height (the on-screen keyboard shrinks it). */
export function followVisualViewport() {
  const vv = window.visualViewport;
  if (!vv) return;
  const update = () => {
    document.documentElement.style.setProperty('--app-height', `${vv.height}px`);
    // iOS scrolls the page up under the keyboard; the layout already fits, so undo it.
    if (vv.offsetTop > 0) window.scrollTo(0, 0);
  };
  vv.addEventListener('resize', update);
  vv.addEventListener('scroll', update);
  update();
}

/**
 * A finger dragged up or down the terminal scrolls it as the mouse wheel would (through xterm.js's
 * own wheel handling: the scrollback, or the arrow keys and mouse reports a full-screen program
 * asked for). xterm.js 6.0.0 lost touch scrolling with its new scroll bar (xtermjs/xterm.js#5489,
 * fixed by #5685 for the next release, which is not on npm yet): remove this when upgrading to it.
 * A tap, a long press and a sideways drag are left alone; two fingers end the gesture.
 */
const WHEEL_DELTA_PER_PX = 120 / 50;

export function touchScroll(element) {
  const THRESHOLD = 10;
  let start = null;
  let lastY = 0;
  let scrolling = false;
  element.addEventListener('touchstart', (e) => {
    start = e.touches.length === 1 ? { x: e.touches[0].clientX, y: e.touches[0].clientY } : null;
    lastY = start ? start.y : 0;
    scrolling = false;
  }, { passive: true });
  element.addEventListener('touchmove', (e) => {
    if (!start || e.touches.length !== 1) {
      start = null;
      return;
    }
    const t = e.touches[0];
    if (!scrolling) {
      const dx = Math.abs(t.clientX - start.x);
      const dy = Math.abs(t.clientY - start.y);
      if (dy < THRESHOLD || dy < dx) return;
      scrolling = true;
    }
    // The page must not scroll or reload (pull to refresh) under the gesture.
    e.preventDefault();
    const target = element.querySelector('.xterm-screen') || element;
    const deltaY = lastY - t.clientY;
    const wheel = new WheelEvent('wheel', {
      deltaY, deltaMode: WheelEvent.DOM_DELTA_PIXEL, clientX: t.clientX, clientY: t.clientY, bubbles: true, cancelable: true,
    });
    // The scroll bar reads Chrome's legacy `wheelDeltaY` where a browser has it (0 on a constructed
    // event): 120 of it scroll 50 px there, so the content follows the finger.
    if ('wheelDeltaY' in wheel) Object.defineProperty(wheel, 'wheelDeltaY', { value: -deltaY * WHEEL_DELTA_PER_PX });
    target.dispatchEvent(wheel);
    lastY = t.clientY;
  }, { passive: false });
  const end = () => { start = null; scrolling = false; };
  element.addEventListener('touchend', end);
  element.addEventListener('touchcancel', end);
}
