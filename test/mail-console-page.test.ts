// The mail console's page in a real browser (Debian's chromium, driven by playwright-core) against a real
// relay and real upstreams: a token typed once; a search finds a delivered, a bounced and a held message;
// the timeline shows the upstream's own reply; retry of a held message delivers it; a tenant's token does
// not find another tenant's mail. A screenshot of each page is written to .tap/screenshots/.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { type Browser, chromium, type Page } from 'playwright-core';
import t, { type Test } from 'tap';
import { consoleFixture, TOKENS } from './helpers/console.js';
import { until } from './helpers/wait.js';

const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => fs.existsSync(p) && spawnSync(p, ['--version']).status === 0);
const needBrowser = CHROMIUM ? {} : { skip: process.env.CI ? false : 'chromium is not installed (apt-get install chromium)' };
const SHOTS = path.resolve('.tap', 'screenshots');

async function browserFor(t: Test): Promise<Browser> {
  // As root (CI containers) Chromium's sandbox cannot start; elsewhere it keeps its sandbox.
  const browser = await chromium.launch({ executablePath: CHROMIUM ?? 'chromium', args: process.getuid?.() === 0 ? ['--no-sandbox'] : [] });
  t.teardown(() => browser.close());
  return browser;
}

async function signIn(page: Page, base: string, token: string): Promise<void> {
  await page.goto(`${base}/console`);
  await page.fill('#token', token);
  await page.press('#token', 'Enter');
  await page.waitForSelector('#view-search:not([hidden])');
}

/** Types a search and waits for its answer (the page marks the summary with the search it is for). */
async function search(page: Page, text: string): Promise<void> {
  await page.fill('#q', text);
  await page.press('#q', 'Enter');
  await page.waitForSelector(`#search-summary[data-for="${new URLSearchParams({ q: text }).toString()}"]`);
}

async function shot(page: Page, name: string): Promise<void> {
  fs.mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
}

t.test('a support desk finds a delivered, a bounced and a held message, reads the upstream reply, and retries the held one', needBrowser, async (t) => {
  const f = await consoleFixture(t);
  const delivered = await f.send('app@acme.test', 'pat@example.com', '<reset-7@acme.test>');
  const bounced = await f.send('app@acme.test', 'nobody@example.com');
  const held = await f.send('app@acme.test', 'later@example.com');
  await until(async () => ((await f.api(`/api/messages/${held}`, TOKENS.desk)).body.message as { status?: string } | null)?.status === 'deferred', 5000);
  t.equal((await f.api(`/api/queue/${held}/hold`, TOKENS.desk, 'POST')).status, 200, 'held through the API');
  const page = await (await browserFor(t)).newPage({ viewport: { width: 1280, height: 800 } });
  const errors: string[] = [];
  page.on('pageerror', (err) => errors.push(err.message));
  page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
  // Nothing from outside the relay.
  const outside: string[] = [];
  page.on('request', (r) => !r.url().startsWith(f.base) && outside.push(r.url()));
  await signIn(page, f.base, TOKENS.desk);

  await search(page, 'pat@example.com');
  t.equal(await page.locator('#results tbody tr').count(), 1);
  t.match(await page.textContent('#results tbody tr'), /✓ delivered.*app@acme\.test.*pat@example\.com.*acme.*250 2\.0\.0 Ok: queued as 4Tq000000Z/);
  t.match(await page.getAttribute('#results tbody time', 'title'), /\d{4}-\d\d-\d\dT/, 'a relative time, the exact one on hover');
  await shot(page, 'search');
  await page.click(`#results tbody tr[data-queue-id="${delivered}"] a`);
  await page.waitForSelector('#view-message:not([hidden]) #m-timeline li');
  t.match(await page.textContent('#m-timeline'), /upstream said: 250 2\.0\.0 Ok: queued as 4Tq000000Z.*its queue id 4Tq000000Z/);
  t.match(await page.textContent('#m-facts'), /<reset-7@acme\.test>/);
  await shot(page, 'timeline');
  t.equal(await page.inputValue('#test-to'), 'pat@example.com', "a send-test to the message's recipient, ready");
  await page.click('#test-form button[type="submit"]');
  await page.locator('#test-result', { hasText: 'sent:' }).waitFor({ timeout: 10_000 });
  t.match(await page.textContent('#test-result'), /relay: 250 2\.0\.0 Ok: queued as \w+\nupstream acme <pat@example\.com> sent: 250 2\.0\.0 Ok: queued as 4Tq000001Z/);

  await page.keyboard.press('Escape');
  await page.waitForSelector('#view-search:not([hidden])');
  await search(page, 'nobody@example.com');
  t.match(await page.textContent(`#results tbody tr[data-queue-id="${bounced}"]`), /✕ bounced.*550 5\.1\.1 .*User unknown/);

  await page.click('nav a[data-view="queue"]');
  await page.waitForSelector(`#queue tbody tr[data-queue-id="${held}"]`);
  t.match(await page.textContent(`#queue tbody tr[data-queue-id="${held}"]`), /‖ on hold.*later@example\.com.*held by hand, until released/);
  await shot(page, 'queue');
  await page.click(`#queue tbody tr[data-queue-id="${held}"] a`);
  await page.waitForSelector('#m-queued:not([hidden])');
  t.match(await page.textContent('#m-queue-facts'), /on hold/);
  f.deferring = false;
  await page.click('#m-actions button[data-action="retry"]');
  t.ok(await until(() => f.acmeUpstream.received.some((r) => r.rcptTo.includes('later@example.com')), 5000), 'retry now delivered it');
  await page.click('nav a[data-view="search"]');
  await until(async () => {
    await search(page, held);
    return /delivered/.test((await page.textContent(`#results tbody tr[data-queue-id="${held}"]`)) ?? '');
  }, 5000);
  t.match(await page.textContent(`#results tbody tr[data-queue-id="${held}"]`), /✓ delivered/);
  t.same(errors, [], 'no script error');
  t.same(outside, [], 'nothing loaded from outside the relay');
});

t.test("a tenant's admin in the page: its own mail, never another tenant's", needBrowser, async (t) => {
  const f = await consoleFixture(t, { manualScheduler: true });
  await f.send('app@beta.test', 'shared@example.com');
  const own = await f.send('app@acme.test', 'shared@example.com');
  const page = await (await browserFor(t)).newPage({ viewport: { width: 1280, height: 800 } });
  await signIn(page, f.base, TOKENS.acme);
  await search(page, 'shared@example.com');
  t.same(await page.locator('#results tbody tr').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-queue-id'))), [own]);
  await search(page, 'app@beta.test');
  t.equal(await page.textContent('#search-summary'), 'No message found.');
  await page.click('nav a[data-view="queue"]');
  await page.waitForSelector('#queue-summary:not(:empty)');
  t.same(await page.locator('#queue tbody tr').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-queue-id'))), [own]);
});

t.test('a token the relay does not take: asked again, nothing shown', needBrowser, async (t) => {
  const f = await consoleFixture(t, { manualScheduler: true });
  const page = await (await browserFor(t)).newPage();
  await page.goto(`${f.base}/console`);
  await page.fill('#token', 'wrong-token-0123456789abcdef');
  await page.press('#token', 'Enter');
  await page.waitForSelector('#token-error:not(:empty)');
  t.equal(await page.textContent('#token-error'), 'That token was not accepted.');
  t.equal(await page.isVisible('#view-search'), false);
  const headers = (await fetch(`${f.base}/console`)).headers;
  t.match(headers.get('content-security-policy'), /default-src 'none'; script-src 'self'/);
});

t.test('suppressions in the page: add one by hand, find it, remove it', needBrowser, async (t) => {
  const f = await consoleFixture(t, { manualScheduler: true });
  const page = await (await browserFor(t)).newPage({ viewport: { width: 1280, height: 800 } });
  page.on('dialog', (d) => void d.accept());
  await signIn(page, f.base, TOKENS.desk);
  await page.click('nav a[data-view="suppressions"]');
  await page.waitForSelector('#supp-summary:not(:empty)');
  t.equal(await page.textContent('#supp-summary'), 'No suppressed address.');
  await page.fill('#supp-add-tenant', 'acme');
  await page.fill('#supp-add-address', 'Pat@Example.com');
  await page.fill('#supp-add-reason', 'asked to stop');
  await page.click('#supp-add button[type="submit"]');
  await page.waitForSelector('#suppressions tbody tr[data-address="pat@example.com"]');
  t.match(await page.textContent('#suppressions tbody tr[data-address="pat@example.com"]'), /pat@example\.com.*acme.*hand.*asked to stop \(console: support-desk\)/);
  await shot(page, 'suppressions');
  await page.fill('#supp-q', 'nobody');
  await page.click('#supp-search button[type="submit"]');
  await page.locator('#supp-summary', { hasText: 'No suppressed address.' }).waitFor();
  await page.fill('#supp-q', 'pa');
  await page.click('#supp-search button[type="submit"]');
  await page.waitForSelector('#suppressions tbody tr[data-address="pat@example.com"]');
  await page.click('#suppressions tbody tr[data-address="pat@example.com"] button[data-action="unsuppress"]');
  await page.locator('#supp-summary', { hasText: 'No suppressed address.' }).waitFor();
  t.same((await f.api('/api/suppressions', TOKENS.desk)).body.suppressions, [], 'gone from the store');
});
