// Page timing of the dashboard in Debian's Chromium (bench/pages): each run opens /dashboard in
// a fresh context with the analyst token already in session storage, and reads the browser's
// own clocks: first contentful paint, the first report's chart in place, every report in place.
// Env: BASE, ANALYST_TOKEN, RUNS (default 10).
import { launch } from "./harness.mjs";

const BASE = process.env.BASE;
const RUNS = Number(process.env.RUNS || 10);
const browser = await launch();
const results = [];
for (let run = 0; run < RUNS; run++) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  await context.addInitScript((token) => sessionStorage.setItem("sl-analyst-token", token), process.env.ANALYST_TOKEN);
  const page = await context.newPage();
  await page.addInitScript(() => {
    window.__marks = {};
    new MutationObserver(() => {
      const loaded = document.querySelectorAll('article[data-loaded="true"]').length;
      const all = document.querySelectorAll("article[data-report]").length;
      if (loaded >= 1 && !window.__marks.first) window.__marks.first = performance.now();
      if (all > 0 && loaded === all && !window.__marks.all) window.__marks.all = performance.now();
    }).observe(document, { subtree: true, attributes: true, childList: true });
  });
  await page.goto(BASE + "/dashboard");
  await page.waitForFunction(() => window.__marks && window.__marks.all, null, { timeout: 120000 });
  const timing = await page.evaluate(() => ({
    fcp: (performance.getEntriesByName("first-contentful-paint")[0] || {}).startTime,
    first: window.__marks.first,
    all: window.__marks.all,
    reports: document.querySelectorAll("article[data-report]").length,
  }));
  results.push(timing);
  await context.close();
}
await browser.close();
const median = (key) => {
  const values = results.map((r) => r[key]).sort((a, b) => a - b);
  return values[Math.floor(values.length / 2)];
};
const max = (key) => Math.max(...results.map((r) => r[key]));
console.log(`dashboard, ${RUNS} fresh loads, ${results[0].reports} reports: first contentful paint median ${median("fcp").toFixed(0)} ms; ` +
  `first report's chart in place median ${median("first").toFixed(0)} ms (max ${max("first").toFixed(0)}); ` +
  `every report in place median ${median("all").toFixed(0)} ms (max ${max("all").toFixed(0)})`);
