// What the Node programs of tests/client_libs.rs share (the same contract as
// client_libs.py): the command line, the record of what the library reported and when,
// when to stop, and the one JSON report.
//
// usage: node PROGRAM BASE_URL TOPIC COUNT QUIET_MS [LAST_EVENT_ID]
//
// The program subscribes to TOPIC (sending LAST_EVENT_ID as `Last-Event-ID` when given)
// and records every event its library reports, with the wall-clock time it came (ms since
// the epoch). Once COUNT events are in it listens QUIET_MS more, so that whatever the
// library reports after the last expected event (an empty event made of a heartbeat, a
// duplicate) is still caught; then it closes the stream, prints the report and exits 0.
// If the library fails first, or after TIME_LIMIT_MS, it prints what it has, with a
// failure, and exits 1.
import { finish, versionOf } from './observe.mjs';

export { versionOf };

/** How long a program may run before it gives up and fails. */
export const TIME_LIMIT_MS = 20_000;

/**
 * Parses the command line and runs `listen(run)`, which opens the stream and returns a
 * function that closes it; `run` carries `url`, `lastEventId` (or null), `record(type,
 * data, lastEventId)`, `error(text)` for an error the library reports without failing,
 * and `fail(err)` for one it fails with. `client` (a promise) names the library.
 */
export function main(usage, client, listen) {
  const [base, topic, count, quietMs, lastEventId, ...rest] = process.argv.slice(2);
  if (!base || !topic || !(Number(count) > 0) || !(Number(quietMs) >= 0) || rest.length) {
    console.error(`usage: ${usage}`);
    process.exit(2);
  }
  const result = { client: '', events: [], errors: [] };
  const timer = setTimeout(() => finish(result, `timed out after ${TIME_LIMIT_MS} ms`), TIME_LIMIT_MS);
  let close = () => {};
  const run = {
    url: `${base}/events?topic=${encodeURIComponent(topic)}`,
    lastEventId: lastEventId || null,
    record(type, data, lastEventId) {
      result.events.push({ type, data, lastEventId, at: Date.now() });
      if (result.events.length === Number(count)) {
        setTimeout(() => {
          clearTimeout(timer);
          close();
          finish(result);
        }, Number(quietMs));
      }
    },
    error(text) {
      result.errors.push(text);
    },
    fail(err) {
      clearTimeout(timer);
      close();
      finish(result, String(err?.stack ?? err));
    },
  };
  client.then(async (name) => {
    result.client = name;
    close = await listen(run);
  }).catch(run.fail);
}
