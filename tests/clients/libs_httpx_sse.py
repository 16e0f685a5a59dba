"""httpx-sse over httpx, used as its README shows: connect_sse() on an httpx.Client, then
every ServerSentEvent that iter_sse() yields.

usage: python libs_httpx_sse.py BASE_URL TOPIC COUNT QUIET_MS [LAST_EVENT_ID]
(see client_libs.py)
"""

import httpx
from httpx_sse import connect_sse

from client_libs import main, versions


def listen(run):
    headers = {"Last-Event-ID": run.last_event_id} if run.last_event_id else {}
    with httpx.Client() as client:
        with connect_sse(client, "GET", run.url, headers=headers) as event_source:
            event_source.response.raise_for_status()
            for sse in event_source.iter_sse():
                run.record(sse.event, sse.data, sse.id)


if __name__ == "__main__":
    main(versions("httpx-sse", "httpx"), listen)
