// The render benchmark's page: the web client's own terminal (`TerminalView`, with the addons and the
// font the page uses) fed a long output at the pace it parses, timed, with every animation
// frame's interval recorded. Bundled and driven by render.mjs.

import '@xterm/xterm/css/xterm.css';
import { DEFAULT_PREFS, TerminalView, fontReady } from '../src/terminal.js';

const FRAME_MS = 1000 / 60;
// At most this much output written to the terminal and not yet parsed (the room's browser window), so
// the figure is the terminal's own pace and memory stays flat.
const WINDOW = 1024 * 1024;
// The largest output frame the room sends a browser (core room MAX_CHUNK).
const CHUNK = 32 * 1024;
export const END = 'render-bench-end';

/** xorshift32: the same output on every run. */
function random(seed) {
  let x = seed;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 4294967296;
  };
}

/** One MiB of what a coding agent's terminal shows: build logs, coloured diffs, prose, a few wide characters. */
function sample() {
  const r = random(0x2545f491);
  const words = ['fn', 'let', 'match', 'error', 'warning', 'session', 'runner', 'the', 'a', 'compile', 'test', 'ok',
    'src/main.rs', 'Cargo.toml', 'impl', 'async', 'await', 'return', 'value', 'offset', 'buffer', 'terminal'];
  const sentence = (n) => Array.from({ length: n }, () => words[Math.floor(r() * words.length)]).join(' ');
  const lines = [];
  let size = 0;
  while (size < 1024 * 1024) {
    const kind = r();
    let line;
    if (kind < 0.25) line = `\x1b[1;32m   Compiling\x1b[0m ${sentence(2)} v0.${Math.floor(r() * 40)}.${Math.floor(r() * 9)}`;
    else if (kind < 0.4) line = `\x1b[32m+    ${sentence(6 + Math.floor(r() * 8))}\x1b[0m`;
    else if (kind < 0.5) line = `\x1b[31m-    ${sentence(6 + Math.floor(r() * 8))}\x1b[0m`;
    else if (kind < 0.55) line = `\x1b[38;5;${Math.floor(r() * 256)}m●\x1b[0m ${sentence(5)} 完成 ✓ 🚀`;
    else line = sentence(8 + Math.floor(r() * 14));
    lines.push(line);
    size += line.length + 2;
  }
  return new TextEncoder().encode(`${lines.join('\r\n')}\r\n`);
}

/** What draws WebGL here (a GPU, or software such as SwiftShader), as the browser names it. */
function glRenderer() {
  const gl = document.createElement('canvas').getContext('webgl2');
  if (!gl) return 'none';
  const info = gl.getExtension('WEBGL_debug_renderer_info');
  return info ? gl.getParameter(info.UNMASKED_RENDERER_WEBGL) : gl.getParameter(gl.RENDERER);
}

/**
 * Writes `mb` MiB to a terminal drawn by `renderer` ('webgl' or 'dom') and returns the figures:
 * elapsed ms, frames drawn and dropped (60 Hz), the longest frame, which renderer drew and what
 * draws WebGL.
 */
window.runRender = async ({ renderer, mb }) => {
  document.body.innerHTML = '<div id="terminal" style="position:absolute;inset:0"></div>';
  await fontReady(DEFAULT_PREFS.fontSize);
  let drew = '';
  const view = new TerminalView(document.getElementById('terminal'), {
    prefs: { ...DEFAULT_PREFS, renderer, scrollback: 10000 },
    copy: () => {},
    onRenderer: (r) => { drew = r; },
  });
  view.fitNow();
  const term = view.term;
  const data = sample();
  const total = mb * 1024 * 1024;
  await new Promise((r) => term.write('warming up\r\n', r));

  const frames = [];
  let running = true;
  const tick = (t) => {
    frames.push(t);
    if (running) requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
  const started = performance.now();
  await new Promise((resolve) => {
    let written = 0;
    let pending = 0;
    const pump = () => {
      while (pending < WINDOW && written < total) {
        const at = written % data.length;
        const chunk = data.subarray(at, Math.min(at + CHUNK, data.length, at + total - written));
        written += chunk.length;
        pending += chunk.length;
        term.write(chunk, () => {
          pending -= chunk.length;
          if (written === total && pending === 0) resolve();
          else pump();
        });
      }
    };
    pump();
  });
  await new Promise((r) => term.write(`\x1b[0m\r\n${END}\r\n`, r));
  // The last screen drawn.
  await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
  const elapsed = performance.now() - started;
  running = false;
  let dropped = 0;
  let longest = 0;
  for (let i = 1; i < frames.length; i += 1) {
    const dt = frames[i] - frames[i - 1];
    longest = Math.max(longest, dt);
    dropped += Math.max(0, Math.round(dt / FRAME_MS) - 1);
  }
  const b = term.buffer.active;
  let ended = false;
  for (let i = b.length - 1; i >= Math.max(0, b.length - term.rows - 2); i -= 1) ended ||= b.getLine(i).translateToString(true) === END;
  return { renderer: drew, gl: glRenderer(), elapsedMs: elapsed, bytes: total, frames: frames.length, dropped, longestMs: longest, ended };
};
