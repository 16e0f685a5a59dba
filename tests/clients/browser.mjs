// A real browser's native EventSource against ringcast: Debian's chromium, headless,
// driven by playwright-core.
// usage: node browser.mjs BASE_URL TOPIC COUNT SCREENSHOT.png
// Environment: CHROMIUM_SPKI_LIST (optional, for an https BASE_URL whose certificate
// comes from a CA the system does not trust): the pins chromium is to accept.
// Prints one JSON document: what observe() recorded inside the page, plus the
// Last-Event-ID header of every /events request the browser made.
import { access, constants, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { chromium } from 'playwright-core';
import { args, bounded, observe } from './observe.mjs';

const { base, topic, count, extra } = args('node browser.mjs BASE_URL TOPIC COUNT SCREENSHOT.png');
const screenshot = extra[0];

// The flags of issue 4: no sandbox (containers), and nothing that talks to the network
// on the browser's own account.
const FLAGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--headless',
  // Over https with the tests' own CA: chromium takes no CA file, but accepts the
  // server's key by its pin (the base64 SHA-256 of its SubjectPublicKeyInfo).
  ...(process.env.CHROMIUM_SPKI_LIST
    ? [`--ignore-certificate-errors-spki-list=${process.env.CHROMIUM_SPKI_LIST}`]
    : []),
];

// Served by request interception at the server's own origin: EventSource across
// origins would need CORS. Once the page has loaded, start() runs observe() on the
// native EventSource into window.result, then lists the events for the screenshot and
// sets window.finished. The stream starts only when the page is told to, after the
// navigation has finished: a request the page makes while it is still loading can be
// missed by the 'request' listener on a machine under load.
const PAGE = `<!doctype html><meta charset="utf-8"><title>ringcast conformance</title>
<h1>ringcast: native EventSource</h1><p id="status">connecting</p><ol id="events"></ol>
<script>
${observe.toString()}
window.result = {};
window.start = () => observe(EventSource, '/events?topic=' + encodeURIComponent(${JSON.stringify(topic)}), {},
  ${count}, window.result, () => {
    const r = window.result;
    document.getElementById('status').textContent =
      r.events.length + ' events, ' + r.opens + ' opens, ' + r.errors.length + ' errors';
    for (const e of r.events) {
      const li = document.createElement('li');
      li.textContent = JSON.stringify(e);
      document.getElementById('events').append(li);
    }
    window.finished = true;
  });
</script>`;

bounded(async (result) => {
  const executablePath = await onPath('chromium');
  const userDataDir = await mkdtemp(join(tmpdir(), 'ringcast-chromium-'));
  // Playwright takes the profile directory as an argument rather than a flag.
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath,
    headless: true,
    args: FLAGS,
  });
  try {
    result.client = `chromium ${context.browser()?.version() ?? ''}`.trim();
    result.requests = [];
    context.on('request', async (request) => {
      if (new URL(request.url()).pathname !== '/events') return;
      const entry = { lastEventId: null };
      result.requests.push(entry);
      entry.lastEventId = (await request.allHeaders())['last-event-id'] ?? null;
    });
    const page = context.pages()[0] ?? (await context.newPage());
    page.on('pageerror', (err) => {
      result.pageErrors = [...(result.pageErrors ?? []), String(err)];
    });
    const pageUrl = `${base}/__test.html`;
    await page.route(pageUrl, (route) =>
      route.fulfill({ status: 200, contentType: 'text/html; charset=utf-8', body: PAGE }),
    );
    await page.goto(pageUrl);
    // Only the page itself is intercepted; the stream goes to the server untouched.
    await page.unroute(pageUrl);
    await page.evaluate(() => {
      window.start();
    });
    // Copies the page's record until it is complete, so a timeout still shows it.
    for (;;) {
      const [record, finished] = await page.evaluate(() => [window.result, window.finished]);
      Object.assign(result, record);
      if (finished) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    await mkdir(dirname(screenshot), { recursive: true });
    await page.screenshot({ path: screenshot, fullPage: true });
  } finally {
    await context.close();
    await rm(userDataDir, { recursive: true, force: true });
  }
});

/** The first executable `name` on PATH. */
async function onPath(name) {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const path = join(dir, name);
    try {
      await access(path, constants.X_OK);
      return path;
    } catch {
      // not here; try the next directory
    }
  }
  throw new Error(`${name} not found on PATH (install it: apt-get install -y ${name})`);
}
