// Round trips to each region, measured against /probe/{region}: a Durable Object placed where that
// region's session rooms are, so the figure is the path the terminal's traffic will take.

const SAMPLES = 3;
const TIMEOUT_MS = 2000;

async function once(region) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), TIMEOUT_MS);
  const started = performance.now();
  try {
    const r = await fetch(`/probe/${encodeURIComponent(region)}`, { cache: 'no-store', signal: controller.signal });
    if (!r.ok) return null;
    return performance.now() - started;
  } catch {
    return null;
  } finally {
    clearTimeout(timer);
  }
}

/** The best of a few probes per region, in ms (null when it did not answer); regions probed in parallel. */
export async function probeAll(regions) {
  const results = await Promise.all(regions.map(async (region) => {
    let best = null;
    for (let i = 0; i < SAMPLES; i += 1) {
      const ms = await once(region);
      if (ms !== null && (best === null || ms < best)) best = ms;
    }
    return [region, best];
  }));
  return Object.fromEntries(results);
}
