// undici's EventSource (v6) against ringcast.
// usage: node node_undici.mjs BASE_URL TOPIC COUNT
// Prints one JSON document: what observe() recorded, plus the Last-Event-ID header of
// every request the client made (seen by an interceptor on its dispatcher).
import { Agent, EventSource } from 'undici';
import { args, bounded, observe, versionOf } from './observe.mjs';

const { url, count } = args('node node_undici.mjs BASE_URL TOPIC COUNT');

bounded(async (result) => {
  result.client = `undici ${await versionOf('undici')}`;
  result.requests = [];
  // Passes every request through unchanged, noting the resume header it carries.
  const dispatcher = new Agent().compose((dispatch) => (opts, handler) => {
    result.requests.push({ lastEventId: headerOf(opts.headers, 'last-event-id') });
    return dispatch(opts, handler);
  });
  await new Promise((done) => observe(EventSource, url, { dispatcher }, count, result, done));
});

/** One header's value from undici's request options (a flat array or an object). */
function headerOf(headers, name) {
  const pairs = Array.isArray(headers)
    ? headers.flatMap((v, i) => (i % 2 ? [] : [[v, headers[i + 1]]]))
    : Object.entries(headers ?? {});
  const hit = pairs.find(([k]) => String(k).toLowerCase() === name);
  return hit ? String(hit[1]) : null;
}
