"""requests-sse, used as its README shows: its EventSource as a context manager, then
every MessageEvent it yields. The resume id goes in as its `latest_event_id` option,
which it sends as `Last-Event-ID`.

usage: python libs_requests_sse.py BASE_URL TOPIC COUNT QUIET_MS [LAST_EVENT_ID]
(see client_libs.py)

EventSource reads response.iter_lines(), 512-byte blocks through urllib3: on a body
delimited by the close, a block is handed over only when it is full; a chunked body hands
over each chunk as it comes.
"""

from requests_sse import EventSource

from client_libs import main, versions


def listen(run):
    # on_error: a failed read or an ended stream, after which it reconnects by itself.
    with EventSource(
        run.url,
        timeout=30,
        latest_event_id=run.last_event_id,
        on_error=lambda: run.error("on_error (the stream failed or ended; reconnecting)"),
    ) as event_source:
        for event in event_source:
            run.record(event.type, event.data, event.last_event_id)


if __name__ == "__main__":
    main(versions("requests-sse", "requests"), listen)
