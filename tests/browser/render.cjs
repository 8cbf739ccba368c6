// Opens a local HTML page in headless Chromium (Debian's, through
// playwright-core) and prints what a reader sees as JSON: the answer tiles,
// the chart's bars, the drift table (the audit report); the plotted days,
// the marked moves, the releases and the services behind the longest (the
// trend page); every console or page error, every request that left the
// file, and a full-page screenshot.
//
//   node tests/browser/render.cjs PAGE.html SCREENSHOT.png
//
// NODE_PATH must reach playwright-core (make tools installs it in .tools).
const path = require("node:path");
const { chromium } = require("playwright-core");

async function main() {
  const [pagePath, screenshot] = process.argv.slice(2);
  if (!pagePath || !screenshot) {
    throw new Error("usage: render.cjs PAGE.html SCREENSHOT.png");
  }
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    // This machine has no internet: keep Chromium from reaching for it.
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
    const errors = [];
    const external = [];
    page.on("console", (m) => {
      if (m.type() === "error" || m.type() === "warning") {
        errors.push(`console ${m.type()}: ${m.text()}`);
      }
    });
    page.on("pageerror", (e) => errors.push(`page error: ${e.message}`));
    page.on("requestfailed", (r) => errors.push(`request failed: ${r.url()}`));
    page.on("request", (r) => {
      if (!r.url().startsWith("file:")) external.push(r.url());
    });
    await page.goto(`file://${path.resolve(pagePath)}`, { waitUntil: "load" });
    const tiles = await page.$$eval(".tile", (ts) =>
      Object.fromEntries(ts.map((t) => [t.id, t.innerText.replace(/\s+/g, " ").trim()])),
    );
    const bars = await page.$$eval("svg rect", (rs) => rs.length);
    const drift = await page.$$eval("#drift tr", (rows) =>
      rows.slice(1).map((r) => [...r.cells].map((c) => c.innerText.trim())),
    );
    const points = await page.$$eval("svg.trend circle.day", (cs) =>
      cs.map((c) => ({
        recipe: c.closest("svg").dataset.recipe,
        date: c.dataset.date,
        percent: Number(c.dataset.percent),
        y: Number(c.getAttribute("cy")),
      })),
    );
    const moves = await page.$$eval("svg.trend g.move", (gs) =>
      gs.map((g) => ({ kind: g.classList[1], at: g.dataset.at })),
    );
    const table = (id) =>
      page.$$eval(`#${id} tr`, (rows) =>
        rows.slice(1).map((r) => [...r.cells].map((c) => c.innerText.trim())),
      );
    const releases = await table("releases");
    const behind = await table("behind-longest");
    await page.screenshot({ path: screenshot, fullPage: true });
    const report = {
      title: await page.title(),
      tiles,
      bars,
      drift,
      points,
      moves,
      releases,
      behind,
      errors,
      external_requests: external,
    };
    process.stdout.write(`${JSON.stringify(report)}\n`);
  } finally {
    await browser.close();
  }
}

main().catch((e) => {
  process.stderr.write(`${e.stack || e}\n`);
  process.exit(1);
});
