// Drives the dashboard in real headless Chromium (Debian's /usr/bin/chromium)
// with playwright-core, for tests/serve_dashboard.rs:
//   node dashboard.cjs BASE_URL DAY TOKEN_ADDRESS OUTPUT_DIR
// Opens the dashboard (reading the pipelines table), starts a run of
// token_transfers for DAY with the "Run now" form, waits until the live runs
// table shows it as success, reads the durations shown, opens the run page
// and the token page and checks the chart and the amounts; reads each
// pipeline's token filter as shown, on hover and in the API. Saves a
// screenshot at each step and prints one JSON line with what it saw. Exits
// non-zero on any failure or any script error on the pages.
'use strict';

const path = require('path');
const { chromium } = require(process.env.ETHPIPE_PLAYWRIGHT_CORE || 'playwright-core');

const [base, day, token, outDir] = process.argv.slice(2);
if (!base || !day || !token || !outDir) {
  console.error('usage: node dashboard.cjs BASE_URL DAY TOKEN_ADDRESS OUTPUT_DIR');
  process.exit(2);
}

const STEP_TIMEOUT = 60000;

async function main() {
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-quic', '--no-first-run', '--disable-component-update', '--disable-sync'],
  });
  const seen = { screenshots: [] };
  const pageErrors = [];
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.setDefaultTimeout(STEP_TIMEOUT);
    page.on('pageerror', (error) => pageErrors.push(String(error)));
    page.on('console', (message) => {
      if (message.type() === 'error') pageErrors.push(message.text());
    });
    const shot = async (name) => {
      const file = path.join(outDir, name);
      await page.screenshot({ path: file, fullPage: true });
      seen.screenshots.push(file);
    };

    // 1. The dashboard.
    await page.goto(base + '/');
    await page.waitForSelector('#pipelines tr[data-pipeline="token_transfers"]');
    seen.pipelines = await page.$$eval('#pipelines tbody tr', (rows) => rows.map((row) => ({
      pipeline: row.dataset.pipeline,
      days: row.querySelector('td.days').textContent.trim(),
      range: row.querySelector('td.range').textContent.trim(),
      rows: row.querySelector('td.rows').textContent.trim(),
      filter: row.querySelector('td.filter') ? row.querySelector('td.filter').textContent.trim() : null,
      filterTitle: row.querySelector('td.filter .tokens') ? row.querySelector('td.filter .tokens').title : null,
    })));
    seen.apiTokens = await page.evaluate(async () => {
      const body = await (await fetch('/api/v1/pipelines')).json();
      return Object.fromEntries(body.pipelines.map((p) => [p.pipeline, p.tokens || null]));
    });
    await shot('01-dashboard.png');
    const filtered = await page.$('#pipelines td.filter span.tokens:not(.mono):not(.muted)');
    if (filtered) {
      await filtered.hover();
      await shot('01b-filter-hover.png');
      seen.filterHovered = true;
    }

    // 2. Run now.
    await page.selectOption('#run-pipeline', 'token_transfers');
    await page.fill('#run-day', day);
    await page.click('#run-submit');
    await page.waitForFunction(() => {
      const box = document.querySelector('#run-message');
      return box && (box.dataset.runId || box.textContent.startsWith('Not started'));
    });
    const message = await page.textContent('#run-message');
    const runId = await page.$eval('#run-message', (box) => box.dataset.runId);
    if (!runId) throw new Error('the run did not start: ' + message);
    seen.runId = Number(runId);
    seen.message = message;

    // 3. Watch the live table until the run is a success (the page is not reloaded).
    const row = `#runs-body tr[data-run-id="${runId}"]`;
    await page.waitForSelector(row);
    seen.firstStatus = await page.textContent(row + ' .status');
    await page.waitForSelector(row + ' .status-success');
    seen.rows = await page.textContent(row + ' td.rows');
    // Every finished run's duration, as the live table shows it.
    seen.durations = await page.$$eval('#runs-body tr', (rows) => rows
      .filter((tr) => !tr.querySelector('.status-running'))
      .map((tr) => tr.querySelector('td.duration').textContent));
    await shot('02-run-success.png');

    // 4. The run page with its log.
    await page.click(row + ' a');
    await page.waitForSelector('#run-status .status-success');
    seen.logLines = await page.$$eval('#logs-body tr', (rows) => rows.length);
    if (seen.logLines < 1) throw new Error('the run page shows no log line');
    seen.runDuration = await page.textContent('#run-duration');
    await shot('03-run-page.png');

    // 5. The token page and its chart.
    await page.goto(`${base}/tokens/${token}`);
    await page.waitForSelector('#chart svg.chart');
    seen.bars = await page.$$eval('#chart svg rect.bar', (bars) => bars.length);
    seen.chartText = await page.$eval('#chart svg', (svg) => svg.textContent);
    const box = await page.$eval('#chart svg', (svg) => {
      const r = svg.getBoundingClientRect();
      return { width: r.width, height: r.height };
    });
    seen.chartSize = box;
    if (seen.bars < 1) throw new Error('the chart has no bars');
    if (box.width < 300 || box.height < 200) throw new Error('the chart is not drawn at a readable size');
    // Amounts as shown, their exact value on hover, and the API's exact values.
    seen.amounts = await page.$$eval('#top .amount', (spans) => spans.map((span) => ({
      text: span.textContent, title: span.title,
    })));
    seen.apiVolumes = await page.evaluate(async (address) => {
      const top = await (await fetch('/api/v1/tokens/' + address + '/top')).json();
      return top.senders.concat(top.receivers).map((c) => c.volume);
    }, token);
    await page.hover('#top .amount');
    await shot('04-token-page.png');
    const chart = await page.$('#chart svg');
    await chart.screenshot({ path: path.join(outDir, '05-chart.png') });
    seen.screenshots.push(path.join(outDir, '05-chart.png'));

    // 6. The day page: each token's volume, rounded, exact on hover.
    await page.goto(`${base}/days/${day}`);
    await page.waitForSelector('#day-tokens');
    seen.dayAmounts = await page.$$eval('#day-tokens .amount', (spans) => spans.map((span) => ({
      text: span.textContent, title: span.title,
    })));
    seen.dayApiVolumes = await page.evaluate(async (d) => {
      const overview = await (await fetch('/api/v1/days/' + d + '?limit=50')).json();
      return overview.top_tokens.filter((t) => t.volume !== null)
        .map((t) => t.volume + (t.symbol ? ' ' + t.symbol : ''));
    }, day);
    await shot('06-day-page.png');
  } finally {
    await browser.close();
  }
  if (pageErrors.length) throw new Error('script errors on the pages: ' + pageErrors.join(' | '));
  console.log(JSON.stringify(seen));
}

main().catch((error) => {
  console.error(error && error.stack ? error.stack : String(error));
  process.exit(1);
});
