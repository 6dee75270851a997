// A dashboard served without a source, in real headless Chromium, for
// tests/serve_dashboard.rs:
//   node readonly.cjs BASE_URL DAY OUTPUT_DIR
// Reads the notice that says why runs cannot start, asks for a run anyway
// with "Run now" and reads the answer shown in the page. Saves screenshots
// and prints one JSON line with what it saw; exits non-zero on any failure
// or script error on the page.
'use strict';

const path = require('path');
const { chromium } = require(process.env.ETHPIPE_PLAYWRIGHT_CORE || 'playwright-core');

const [base, day, outDir] = process.argv.slice(2);
if (!base || !day || !outDir) {
  console.error('usage: node readonly.cjs BASE_URL DAY OUTPUT_DIR');
  process.exit(2);
}

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
    page.setDefaultTimeout(60000);
    page.on('pageerror', (error) => pageErrors.push(String(error)));
    const shot = async (name) => {
      const file = path.join(outDir, name);
      await page.screenshot({ path: file, fullPage: true });
      seen.screenshots.push(file);
    };
    await page.goto(base + '/');
    await page.waitForSelector('#no-source');
    seen.notice = await page.textContent('#no-source');
    seen.reason = await page.textContent('#no-source-reason');
    seen.emptyRuns = await page.textContent('#runs-body tr.empty');
    seen.pipelines = await page.$$eval('#pipelines tbody tr', (rows) => rows.map((row) => row.textContent));
    await shot('06-read-only-dashboard.png');

    // The answer the server gives (a console error for the 503 is expected).
    await page.selectOption('#run-pipeline', 'token_transfers');
    await page.fill('#run-day', day);
    await page.click('#run-submit');
    await page.waitForFunction(() => {
      const box = document.querySelector('#run-message');
      return box && box.textContent.startsWith('Not started');
    });
    seen.runMessage = await page.textContent('#run-message');
    await shot('07-read-only-run-refused.png');
  } finally {
    await browser.close();
  }
  if (pageErrors.length) throw new Error('script errors on the page: ' + pageErrors.join(' | '));
  console.log(JSON.stringify(seen));
}

main().catch((error) => {
  console.error(error && error.stack ? error.stack : String(error));
  process.exit(1);
});
