// The scenario every EventSource client runs (browser, `eventsource`, undici), written
// once, plus the command-line plumbing the Node programs share.
import { readFile } from 'node:fs/promises';

/** How long a client may run before it gives up and fails. */
export const TIME_LIMIT_MS = 30_000;

/**
 * Opens `url` with `EventSource` and records what the client reports: every event
 * (type, data, lastEventId, and which connection it came on), each open, and each
 * error with the readyState right after it (0 = CONNECTING: the client is reconnecting
 * by itself; 2 = CLOSED: it gave up). Once `count` events are in, it keeps listening
 * until the server ends that stream too (so a duplicate would show), then closes and
 * calls `done()`. It records into `result`, so a timeout still shows what came.
 *
 * Self-contained (no imports, nothing from the module's scope): browser.mjs sends its
 * source text into the page, where it runs on the browser's native EventSource.
 */
export function observe(EventSource, url, init, count, result, done) {
  Object.assign(result, { opens: 0, errors: [], events: [] });
  const es = new EventSource(url, init);
  const record = (e) => {
    result.events.push({
      type: e.type,
      data: e.data,
      lastEventId: e.lastEventId,
      connection: result.opens,
    });
  };
  es.onopen = () => {
    result.opens += 1;
  };
  es.onerror = () => {
    result.errors.push({ afterEvents: result.events.length, readyState: es.readyState });
    if (result.events.length >= count) {
      es.close();
      done();
    }
  };
  // Unnamed events arrive as `message`; named ones only to their own listeners.
  es.onmessage = record;
  es.addEventListener('update', record);
  // ringcast's in-band loss notice: recorded so that a test sees one it did not expect.
  es.addEventListener('gap', record);
  return es;
}

/** The positional arguments `BASE_URL TOPIC COUNT [EXTRA...]`, or exit 2 with usage. */
export function args(usage) {
  const [base, topic, count, ...extra] = process.argv.slice(2);
  if (!base || !topic || !(Number(count) > 0)) {
    console.error(`usage: ${usage}`);
    process.exit(2);
  }
  const url = `${base}/events?topic=${encodeURIComponent(topic)}`;
  return { base, topic, url, count: Number(count), extra };
}

let finished = false;

/** Prints the one JSON document and exits: 0 if complete, 1 if `failure` is set. */
export function finish(result, failure) {
  if (finished) return;
  finished = true;
  if (failure) result.failure = failure;
  process.stdout.write(JSON.stringify(result, null, 1) + '\n', () => {
    process.exit(failure ? 1 : 0);
  });
}

/**
 * Runs `scenario(result)`, which fills `result` and resolves when done; prints the
 * result then, or what there is of it if the scenario throws or runs out of time.
 */
export function bounded(scenario) {
  const result = {};
  const limit = `timed out after ${TIME_LIMIT_MS} ms`;
  const timer = setTimeout(() => finish(result, limit), TIME_LIMIT_MS);
  scenario(result).then(
    () => finish(result),
    (err) => finish(result, String(err?.stack ?? err)),
  ).finally(() => clearTimeout(timer));
}

/** The installed version of a node module, for the report. */
export async function versionOf(name) {
  const path = new URL(`./node_modules/${name}/package.json`, import.meta.url);
  return JSON.parse(await readFile(path, 'utf8')).version;
}
