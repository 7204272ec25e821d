// One person at the enrolment page, in the system's headless Chromium, driven over CDP
// by playwright-core: open the link, type a password twice, press the button, and either
// save the downloaded PKCS#12 or read the error the page shows. Prints one JSON object:
// what happened, plus everything the Rust test checks about the page itself (every
// request it made, what was blocked for not going to the gate, console messages,
// Content-Security-Policy violations).
//
//   node enroll.mjs '{"url": "https://localhost:PORT/enroll#TOKEN", "home": DIR,
//                     "password": "…", "out": "FILE.p12"}'
//
// HOME holds the NSS database (HOME/.pki/nssdb) that trusts the test CA's root, so the
// gate's certificate verifies as it would for a person: no certificate errors ignored.

import { chromium } from 'playwright-core';

const cfg = JSON.parse(process.argv[2]);
const result = { requests: [], console: [], page_errors: [] };

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--no-default-browser-check'],
  env: { ...process.env, HOME: cfg.home },
  timeout: 30_000,
});
try {
  const context = await browser.newContext({ acceptDownloads: true });
  // Injected over CDP before any of the page's own code, so the policy does not apply
  // to it: it only listens for what the policy refused.
  await context.addInitScript(() => {
    window.__csp = [];
    document.addEventListener('securitypolicyviolation', (e) =>
      window.__csp.push(`${e.effectiveDirective} blocked ${e.blockedURI || '(inline)'}`),
    );
  });
  context.on('request', (r) => result.requests.push(r.url()));
  // No network but the gate: anything else the page asks for is refused, and listed.
  const origin = new URL(cfg.url).origin;
  result.blocked = [];
  await context.route('**/*', (route) => {
    const url = route.request().url();
    if (url.startsWith(`${origin}/`)) return route.continue();
    result.blocked.push(url);
    return route.abort('blockedbyclient');
  });
  const page = await context.newPage();
  page.on('console', (m) => result.console.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => result.page_errors.push(String(e)));

  await page.goto(cfg.url, { waitUntil: 'load' });
  const shown = '#form:not([hidden]), #error:not([hidden])';
  await page.waitForSelector(shown, { timeout: 10_000 });
  result.url_after_load = page.url();
  if (await page.isVisible('#form')) {
    await page.fill('#password', cfg.password);
    await page.fill('#confirm', cfg.password);
    const started = Date.now();
    await page.click('#go');
    await page.waitForSelector('#done:not([hidden]), #error:not([hidden])', { timeout: 120_000 });
    result.seconds = (Date.now() - started) / 1000;
  }
  if (await page.isVisible('#done')) {
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download')]);
    await download.saveAs(cfg.out);
    result.outcome = 'download';
    result.file_name = download.suggestedFilename();
    result.cn = await page.textContent('#cn');
  } else {
    result.outcome = 'error';
    result.error = await page.textContent('#error');
  }
  result.csp_violations = await page.evaluate(() => window.__csp);
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
