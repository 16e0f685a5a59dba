// The `eventsource` package (v5, a WHATWG EventSource on fetch), used as its README
// shows: a listener per event type, and the `fetch` option to add a request header (here
// `Last-Event-ID`, for the resume).
// usage: node libs_eventsource.mjs BASE_URL TOPIC COUNT QUIET_MS [LAST_EVENT_ID]
// (see client_libs.mjs)
import { EventSource } from 'eventsource';
import { main, versionOf } from './client_libs.mjs';

main(
  'node libs_eventsource.mjs BASE_URL TOPIC COUNT QUIET_MS [LAST_EVENT_ID]',
  versionOf('eventsource').then((v) => `eventsource ${v}`),
  (run) => {
    const init = {};
    if (run.lastEventId) {
      init.fetch = (input, init) =>
        fetch(input, { ...init, headers: { ...init.headers, 'Last-Event-ID': run.lastEventId } });
    }
    const es = new EventSource(run.url, init);
    const record = (e) => run.record(e.type, e.data, e.lastEventId);
    // Unnamed events arrive as `message`, named ones only to their own listeners: these
    // are the names the test publishes, plus ringcast's in-band loss notice.
    for (const type of ['message', 'chk', 'gap']) es.addEventListener(type, record);
    // An error event: the stream failed or ended, and the client reconnects by itself.
    es.addEventListener('error', (e) =>
      run.error(`error event (${e.message ?? ''}), readyState ${es.readyState}`),
    );
    return () => es.close();
  },
);
