// Render throughput of the web client's terminal in Chromium: the WebGL renderer against the DOM
// renderer, in one run, each round in a fresh page, interleaved so both see the same machine. Run by
// `cargo xtask bench render` (and once, small, by the browser test so it keeps working).
//
// Arguments: --mb N (MiB of output per run, default 50), --rounds N (default 3). Environment: CHROMIUM
// (default /usr/bin/chromium). Output: one JSON object per run, then {"table": [...]} (per renderer the
// median over the rounds of MB/s, its ratio to the DOM renderer's, frames drawn and dropped at 60 Hz,
// the longest frame), then the same table as text.

import { build } from 'esbuild';
import { chromium } from 'playwright-core';
import fs from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const arg = (name, fallback) => {
  const at = process.argv.indexOf(`--${name}`);
  const value = at >= 0 ? Number(process.argv[at + 1]) : fallback;
  if (!Number.isInteger(value) || value < 1) throw new Error(`--${name} takes a whole number above 0`);
  return value;
};
const mb = arg('mb', 50);
const rounds = arg('rounds', 3);
const out = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);

const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'edgeshell-render-'));
await build({
  entryPoints: [path.join(here, 'render-page.js')],
  bundle: true,
  format: 'esm',
  minify: true,
  target: 'es2022',
  loader: { '.woff2': 'file', '.woff': 'file' },
  assetNames: 'assets/[name]-[hash]',
  outdir: dir,
  logLevel: 'warning',
});
await fs.writeFile(path.join(dir, 'index.html'),
  '<!doctype html><meta charset="utf-8"><link rel="stylesheet" href="render-page.css"><body style="margin:0;background:#0b0f14;width:1100px;height:700px"></body><script type="module" src="render-page.js"></script>');
const types = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.woff2': 'font/woff2', '.woff': 'font/woff' };
const server = http.createServer(async (req, res) => {
  try {
    const wanted = new URL(req.url, 'http://127.0.0.1').pathname;
    const file = path.join(dir, path.normalize(wanted === '/' ? 'index.html' : wanted));
    if (!file.startsWith(`${dir}${path.sep}`)) return res.writeHead(404).end();
    const body = await fs.readFile(file);
    res.writeHead(200, { 'content-type': types[path.extname(file)] || 'application/octet-stream' }).end(body);
  } catch {
    res.writeHead(404).end();
  }
});
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const base = `http://127.0.0.1:${server.address().port}/`;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
});
const median = (xs) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];
try {
  const runs = { webgl: [], dom: [] };
  for (let round = 0; round < rounds; round += 1) {
    for (const renderer of round % 2 ? ['webgl', 'dom'] : ['dom', 'webgl']) {
      const page = await browser.newPage({ viewport: { width: 1100, height: 700 } });
      await page.goto(base);
      await page.waitForFunction(() => typeof window.runRender === 'function');
      const r = await page.evaluate((o) => window.runRender(o), { renderer, mb });
      await page.close();
      if (!r.ended) throw new Error(`the ${renderer} run did not show the end of its output`);
      if (!r.renderer.startsWith(renderer)) throw new Error(`asked for ${renderer}, drawn by ${r.renderer}`);
      const mbps = r.bytes / 1e6 / (r.elapsedMs / 1000);
      out({ round, renderer, gl: r.gl, mbps: +mbps.toFixed(2), seconds: +(r.elapsedMs / 1000).toFixed(2), frames: r.frames, dropped: r.dropped, longestMs: Math.round(r.longestMs) });
      runs[renderer].push({ mbps, ...r });
    }
  }
  const domMbps = median(runs.dom.map((r) => r.mbps));
  const table = ['dom', 'webgl'].map((renderer) => {
    const rs = runs[renderer];
    const mbps = median(rs.map((r) => r.mbps));
    return {
      renderer,
      mb,
      mbps: +mbps.toFixed(2),
      ratio: +(mbps / domMbps).toFixed(2),
      frames: median(rs.map((r) => r.frames)),
      dropped: median(rs.map((r) => r.dropped)),
      droppedShare: +median(rs.map((r) => r.dropped / (r.frames + r.dropped))).toFixed(3),
      longestMs: Math.round(median(rs.map((r) => r.longestMs))),
    };
  });
  out({ table });
  console.log(`\n${mb} MiB of output per run (MB/s: 10^6 bytes a second), ${rounds} rounds, medians; ratios to the DOM renderer; WebGL drawn by ${runs.webgl[0].gl}`);
  console.log('renderer      MB/s   ratio   frames  dropped  dropped share  longest frame');
  for (const t of table) {
    console.log(`${t.renderer.padEnd(8)} ${t.mbps.toFixed(2).padStart(9)} ${t.ratio.toFixed(2).padStart(6)}x ${String(t.frames).padStart(8)} ${String(t.dropped).padStart(8)} ${t.droppedShare.toFixed(3).padStart(14)} ${String(t.longestMs).padStart(11)} ms`);
  }
} finally {
  await browser.close();
  server.close();
  await fs.rm(dir, { recursive: true, force: true });
}
