// Drives ringcast's live page in headless Chromium (Debian's `chromium`, through
// playwright-core) and prints one JSON object saying what it saw. tests/page.rs starts
// the server (with a short --max-lifetime, so the server itself ends the stream) and
// asserts on that JSON; this program only acts and observes.
//
// Environment: RINGCAST_PAGE (the page's URL, e.g. http://127.0.0.1:PORT/demo, without
// the trailing slash so the redirect is exercised too), SCREENSHOT (where to save the
// PNG), CHROMIUM (optional: the browser, else `chromium` on PATH). Over https with a CA
// the system does not trust: CHROMIUM_SPKI_LIST (the server key's pin, the base64
// SHA-256 of its SubjectPublicKeyInfo: chromium takes no CA file) and
// NODE_EXTRA_CA_CERTS (the CA, for the publishes made with Node's fetch).

import { accessSync, constants, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, dirname, join } from "node:path";

const HINT = "install it with tests/clients/install.sh (or: apt-get install chromium; " +
  "npm install in tests/clients for playwright-core)";
const STEP_MS = 20_000; // the longest any one step may take

function fail(message) {
  console.log(JSON.stringify({ error: message }));
  process.exit(3);
}

let chromium;
try {
  ({ chromium } = await import("playwright-core"));
} catch (e) {
  fail(`playwright-core is missing (${e.message}); ${HINT}`);
}

function onPath(name) {
  for (const dir of (process.env.PATH || "").split(delimiter)) {
    try {
      accessSync(join(dir, name), constants.X_OK);
      return join(dir, name);
    } catch { /* keep looking */ }
  }
  return null;
}

const browserPath = process.env.CHROMIUM || onPath("chromium");
if (!browserPath) fail(`no chromium on PATH; ${HINT}`);
const pageUrl = process.env.RINGCAST_PAGE;
const screenshot = process.env.SCREENSHOT;
if (!pageUrl || !screenshot) fail("set RINGCAST_PAGE and SCREENSHOT");

const profile = mkdtempSync(join(tmpdir(), "ringcast-page-"));
const seen = {
  consoleErrors: [],
  steps: [],
};
const step = (name) => seen.steps.push(name);

// Publishes like curl would: a plain POST from outside the browser.
async function httpPublish(query, body, contentType = "text/plain") {
  const base = pageUrl.endsWith("/") ? pageUrl : pageUrl + "/";
  const res = await fetch(new URL("publish?" + query, base), {
    method: "POST",
    body,
    headers: { "Content-Type": contentType },
  });
  const text = await res.text();
  if (res.status !== 202) throw new Error(`publish ${query}: ${res.status} ${text}`);
  return JSON.parse(text);
}

const context = await chromium.launchPersistentContext(profile, {
  executablePath: browserPath,
  headless: true,
  viewport: { width: 1280, height: 1000 },
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ...(process.env.CHROMIUM_SPKI_LIST
      ? [`--ignore-certificate-errors-spki-list=${process.env.CHROMIUM_SPKI_LIST}`]
      : []),
  ],
});

try {
  const page = context.pages()[0] ?? await context.newPage();
  page.setDefaultTimeout(STEP_MS);
  page.on("console", (m) => { if (m.type() === "error") seen.consoleErrors.push(m.text()); });
  page.on("pageerror", (e) => seen.consoleErrors.push(String(e)));

  // Open the page (through the base path's redirect) and record, from inside the page,
  // every status change and every announcement of the live region.
  const response = await page.goto(pageUrl);
  seen.finalUrl = page.url();
  seen.pageStatus = response.status();
  await page.evaluate(() => {
    window.__states = [];
    window.__announced = [];
    const status = document.getElementById("status");
    const announcer = document.getElementById("announcer");
    new MutationObserver(() => {
      const last = window.__states.at(-1);
      const now = { state: status.dataset.state, text: status.textContent };
      if (!last || last.state !== now.state) window.__states.push(now);
      else if (now.state === "reconnecting") window.__states.push(now);
    }).observe(status, { attributes: true, childList: true, characterData: true, subtree: true });
    new MutationObserver(() => {
      if (announcer.textContent) window.__announced.push(announcer.textContent);
    }).observe(announcer, { childList: true, characterData: true, subtree: true });
  });
  step("opened");

  // The server panel comes alive from sys:stats.
  await page.waitForFunction(() => Number(document.getElementById("stat-connections").textContent) > 0);
  seen.statsConnections = Number(await page.textContent("#stat-connections"));
  step("stats");

  // Connect with the keyboard: type a topic, press Enter.
  const topic = "e2e-" + Date.now().toString(36);
  seen.topic = topic;
  await page.focus("#sub-topic");
  await page.fill("#sub-topic", topic);
  await page.keyboard.press("Enter");
  await page.waitForSelector('#status[data-state="open"]');
  step("open");

  // Publish through the page's form, again by keyboard: Tab from the data to the button.
  await page.fill("#pub-event", "greeting");
  await page.fill("#pub-data", "hello from the form");
  await page.focus("#pub-data");
  await page.keyboard.press("Tab");
  seen.focusAfterData = await page.evaluate(() => document.activeElement.id);
  await page.keyboard.press("Enter");
  await page.waitForFunction(() => /Published as id/.test(document.getElementById("publish-result").textContent));
  seen.publishResult = await page.textContent("#publish-result");
  await waitForEvent(page, "hello from the form");
  step("form");

  // Publish from outside the browser, like curl.
  seen.curlId = (await httpPublish(`topic=${topic}`, "hello from curl")).id;
  await waitForEvent(page, "hello from curl");
  step("curl");

  // The server ends the stream at its max lifetime: publish while the page is away, and
  // see the event arrive once EventSource has reconnected (Last-Event-ID resume).
  await page.waitForSelector('#status[data-state="reconnecting"]');
  seen.missedId = (await httpPublish(`topic=${topic}&event=update`, "missed while away")).id;
  seen.stateWhenMissedPublished = await page.getAttribute("#status", "data-state");
  await page.waitForSelector('#status[data-state="open"]');
  await waitForEvent(page, "missed while away");
  step("resumed");

  // Some traffic for the panel's rates and sparkline: a few batches while open.
  for (let b = 0; b < 3; b++) {
    const lines = Array.from({ length: 10 }, (_, i) =>
      JSON.stringify({ topic, event: "update", data: JSON.stringify({ batch: b, n: i }) })).join("\n");
    await httpPublish("", lines, "application/x-ndjson");
    await new Promise((r) => setTimeout(r, 300));
  }
  await page.waitForFunction(() => Number(document.getElementById("stat-delivered").textContent) > 0);
  seen.deliveredPerSecond = Number(await page.textContent("#stat-delivered"));
  step("traffic");

  // More events while away than the server keeps (--history 5): the page must show the
  // in-band gap notice, then the events that were still retained.
  await page.waitForSelector('#status[data-state="reconnecting"]');
  const lost = Array.from({ length: 10 }, (_, i) => JSON.stringify({ topic, data: `lost-${i}` })).join("\n");
  seen.lostIds = (await httpPublish("", lost, "application/x-ndjson")).ids;
  await page.waitForSelector("#gap:not([hidden])");
  await page.waitForSelector('#status[data-state="open"]');
  await waitForEvent(page, "lost-9");
  seen.gapText = await page.textContent("#gap-text");
  // Announcements that come together are spoken together after a short pause: wait for
  // the gap's rather than reading the region before it is filled.
  await page.waitForFunction(() => window.__announced.some((t) => t.includes("Some events were lost")));
  step("gap");

  // What the page shows now: the events, newest first, and the rest of its state (read
  // at once: the server ends the stream again a few seconds later).
  seen.events = await renderedEvents(page);
  seen.lastIdShown = await page.textContent("#last-id");
  seen.states = await page.evaluate(() => window.__states);
  seen.announced = await page.evaluate(() => window.__announced);

  // Let the panel take one more sample, then the pictures: wide, narrow, and dark. The
  // sparkline needs three samples; on a loaded machine (the whole suite running) they can
  // take longer than a second each, so wait for them, up to 10 s.
  await page.waitForTimeout(1200);
  await page.waitForFunction(() => {
    const points = document.querySelector("#sparkline .line.delivered")?.getAttribute("points") || "";
    return points.split(" ").filter(Boolean).length >= 3;
  }, null, { timeout: 10000 }).catch(() => {});
  seen.statsConnections = Number(await page.textContent("#stat-connections"));
  seen.sparklinePoints = (await page.getAttribute("#sparkline .line.delivered", "points") || "")
    .split(" ").filter(Boolean).length;
  mkdirSync(dirname(screenshot), { recursive: true });
  await page.evaluate(() => { document.activeElement?.blur(); window.scrollTo(0, 0); });
  await page.screenshot({ path: screenshot });
  await page.setViewportSize({ width: 390, height: 900 });
  await page.screenshot({ path: screenshot.replace(/\.png$/, "-narrow.png"), fullPage: false });
  await page.setViewportSize({ width: 1280, height: 1000 });
  await page.emulateMedia({ colorScheme: "dark" });
  await page.screenshot({ path: screenshot.replace(/\.png$/, "-dark.png") });
  await page.emulateMedia({ colorScheme: "light" });
  step("screenshot");

  // A flood bigger than the cap: the list stays bounded.
  const flood = Array.from({ length: 250 }, (_, i) => JSON.stringify({ topic, data: `flood-${i}` })).join("\n");
  await httpPublish("", flood, "application/x-ndjson");
  await waitForEvent(page, "flood-249");
  seen.afterFlood = {
    shown: await page.$$eval("#events > li", (items) => items.length),
    newest: await page.textContent("#events > li:first-child pre"),
    count: await page.textContent("#event-count"),
  };
  step("flood");
} catch (e) {
  seen.error = String(e && e.stack || e);
} finally {
  await context.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
}
console.log(JSON.stringify(seen));

async function waitForEvent(page, data) {
  await page.waitForFunction(
    (want) => [...document.querySelectorAll("#events pre")].some((p) => p.textContent === want),
    data,
  );
}

async function renderedEvents(page) {
  return page.$$eval("#events > li", (items) => items.map((li) => ({
    name: li.querySelector(".name").textContent,
    id: li.querySelector(".mono").textContent.replace(/^id /, ""),
    data: li.querySelector("pre").textContent,
    time: li.querySelector("time").textContent,
  })));
}
