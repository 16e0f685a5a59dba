// The `eventsource` package (v5, WHATWG EventSource on top of fetch) against ringcast.
// usage: node node_eventsource.mjs BASE_URL TOPIC COUNT
// Prints one JSON document: what observe() recorded, plus the Last-Event-ID header of
// every request the client made (seen through its `fetch` option).
import { EventSource } from 'eventsource';
import { args, bounded, observe, versionOf } from './observe.mjs';

const { url, count } = args('node node_eventsource.mjs BASE_URL TOPIC COUNT');

bounded(async (result) => {
  result.client = `eventsource ${await versionOf('eventsource')}`;
  result.requests = [];
  // Passes every request through unchanged, noting the resume header it carries.
  const fetch = (input, init) => {
    result.requests.push({ lastEventId: init?.headers?.['Last-Event-ID'] ?? null });
    return globalThis.fetch(input, init);
  };
  await new Promise((done) => observe(EventSource, url, { fetch }, count, result, done));
});
