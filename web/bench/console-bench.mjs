// Measures the console in headless Chromium with the Performance API:
//   node bench/console-bench.mjs URL TOKEN LINEAGE_ROOT
// Prints one JSON line. Driven by bench/console.py, which prepares a large database.
import { launch, newPage } from "../e2e/lib.mjs";

const [url, token, root] = process.argv.slice(2);
if (!url || !token || !root) {
  console.error("usage: node bench/console-bench.mjs URL TOKEN LINEAGE_ROOT");
  process.exit(2);
}

// Records, relative to navigation start, when a selector first appears (checked on every
// DOM mutation, then stamped on the next animation frame, i.e. when it is painted).
const OBSERVER = `
  window.__marks = {};
  window.__watch = (name, sel) => {
    const check = () => {
      if (window.__marks[name] === undefined && document.querySelector(sel)) {
        window.__marks[name] = -1;
        requestAnimationFrame(() => (window.__marks[name] = performance.now()));
      }
    };
    new MutationObserver(check).observe(document, { subtree: true, childList: true });
    check();
  };
  window.__lcp = 0;
  new PerformanceObserver((l) => { for (const e of l.getEntries()) window.__lcp = e.startTime; })
    .observe({ type: "largest-contentful-paint", buffered: true });
`;

async function cold(context, hash, name, selector) {
  const { page } = await newPage(context);
  await page.addInitScript(
    ({ t, o, n, s }) => {
      sessionStorage.setItem("accord.token", t);
      // eslint-disable-next-line no-eval
      (0, eval)(o);
      window.__watch(n, s);
    },
    { t: token, o: OBSERVER, n: name, s: selector },
  );
  await page.goto(`${url}/${hash}`);
  await page.waitForFunction((n) => window.__marks[n] > 0, name, { timeout: 60000 });
  const mark = await page.evaluate((n) => window.__marks[n], name);
  const lcp = await page.evaluate(() => window.__lcp);
  const api = await page.evaluate(() =>
    performance
      .getEntriesByType("resource")
      .filter((e) => e.name.includes("/api/v1/"))
      .map((e) => ({ path: new URL(e.name).pathname, ms: Math.round(e.duration), end: Math.round(e.responseEnd) })),
  );
  return { page, ms: Math.round(mark), lcp_ms: Math.round(lcp), api };
}

const { context, close } = await launch();
const out = {};
try {
  // Warm the browser's cache of the console's assets once, as a returning user has it.
  const warm = await cold(context, "#/", "ov", '[data-testid="kpi-jobs"]');
  await warm.page.waitForFunction(
    () => performance.getEntriesByType("resource").some((e) => e.name.includes("/overview/runs")),
    null,
    { timeout: 60000 },
  );
  await warm.page.close();

  const ov = await cold(context, "#/", "ov", '[data-testid="kpi-jobs"]');
  out.overview = { first_meaningful_paint_ms: ov.ms, lcp_ms: ov.lcp_ms, api: ov.api };
  // The page then loads the 7-day counts; let that finish so it does not slow the next page.
  await ov.page.waitForFunction(
    () => performance.getEntriesByType("resource").some((e) => e.name.includes("/overview/runs")),
    null,
    { timeout: 60000 },
  );
  out.overview.week_counts_ms = await ov.page.evaluate(() =>
    Math.round(performance.getEntriesByType("resource").find((e) => e.name.includes("/overview/runs")).duration),
  );
  await ov.page.close();

  const jobs = await cold(context, "#/jobs", "rows", '[data-testid="jobs-table"] tbody tr[data-index]');
  out.jobs = { first_meaningful_paint_ms: jobs.ms, lcp_ms: jobs.lcp_ms, api: jobs.api };
  // Scroll the virtualized table for ~4 s, 120 px per frame; record frame intervals.
  const frames = await jobs.page.evaluate(
    () =>
      new Promise((done) => {
        const el = document.querySelector(".table-scroll");
        const ts = [];
        let last = performance.now();
        const t0 = last;
        const step = (t) => {
          ts.push(t - last);
          last = t;
          el.scrollTop += 120;
          if (t - t0 < 4000) requestAnimationFrame(step);
          else done({ intervals: ts, rows: el.querySelectorAll("tbody tr[data-index]").length, top: el.scrollTop });
        };
        requestAnimationFrame(step);
      }),
  );
  const iv = frames.intervals.slice(1).sort((a, b) => a - b);
  const pct = (p) => +iv[Math.min(iv.length - 1, Math.floor((p / 100) * iv.length))].toFixed(1);
  out.jobs.scroll = {
    frames: iv.length,
    p50_ms: pct(50),
    p95_ms: pct(95),
    max_ms: +iv[iv.length - 1].toFixed(1),
    dropped: iv.filter((x) => x > 1.5 * (1000 / 60)).length,
    rendered_rows: frames.rows,
    scrolled_px: frames.top,
  };
  await jobs.page.close();

  const lin = await cold(
    context,
    `#/lineage?job=${encodeURIComponent(root)}&dir=down&depth=5`,
    "graph",
    ".react-flow__node",
  );
  const nodes = await lin.page.locator(".react-flow__node").count();
  const linApi = lin.api.find((a) => a.path === "/api/v1/lineage");
  out.lineage = {
    nodes,
    api_ms: linApi?.ms ?? null,
    layout_and_draw_ms: linApi ? lin.ms - linApi.end : null,
    total_ms: lin.ms,
  };
  await lin.page.close();
} finally {
  await close();
}
console.log(JSON.stringify(out));
