// @microsoft/fetch-event-source, used as its README shows: fetchEventSource(url, {
// headers, onmessage, onclose, onerror, signal }), with `openWhenHidden: true` (there is no
// page to hide here). It is written for browsers: it takes `fetch`, `setTimeout` and
// `clearTimeout` from `window` and listens to `document`, so both are stubbed before it
// loads.
// usage: node libs_fetch_event_source.mjs BASE_URL TOPIC COUNT QUIET_MS [LAST_EVENT_ID]
// (see client_libs.mjs)
import { main, versionOf } from './client_libs.mjs';

globalThis.window = {
  fetch: (...args) => globalThis.fetch(...args),
  setTimeout: (...args) => globalThis.setTimeout(...args),
  clearTimeout: (...args) => globalThis.clearTimeout(...args),
};
globalThis.document = { hidden: false, addEventListener() {}, removeEventListener() {} };
// A CommonJS package: its exports come as the default export.
const { fetchEventSource } = (await import('@microsoft/fetch-event-source')).default;

main(
  'node libs_fetch_event_source.mjs BASE_URL TOPIC COUNT QUIET_MS [LAST_EVENT_ID]',
  versionOf('@microsoft/fetch-event-source').then((v) => `@microsoft/fetch-event-source ${v}`),
  (run) => {
    const ctrl = new AbortController();
    // The library's own key for the header, so that a reconnect replaces it.
    const headers = run.lastEventId ? { 'last-event-id': run.lastEventId } : {};
    fetchEventSource(run.url, {
      headers,
      openWhenHidden: true,
      signal: ctrl.signal,
      onmessage(msg) {
        // `event` is '' for an unnamed event: WHATWG calls that type `message`. `id` is the
        // block's own id (the library keeps no last id for the reader).
        run.record(msg.event || 'message', msg.data, msg.id);
      },
      onclose() {
        run.error('onclose (the server ended the stream)');
      },
      onerror(err) {
        // Rethrown: no retries behind the test's back; the run fails with it.
        throw err;
      },
    }).catch(run.fail);
    return () => ctrl.abort();
  },
);
