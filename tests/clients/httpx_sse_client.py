"""httpx + httpx-sse against ringcast, reconnecting by hand as an EventSource would.

usage: python httpx_sse_client.py BASE_URL TOPIC COUNT

Reads the stream until the server ends it; while fewer than COUNT events have come,
waits the server's last `retry:` hint and reconnects with `Last-Event-ID` set to the
last id seen. Prints one JSON document: each connection (the Last-Event-ID it sent,
its status, the retry hints it got) and each event (type, data, lastEventId, which
connection). Exits 1 on failure or after TIME_LIMIT_S.
"""

import json
import signal
import sys
from importlib.metadata import version
from time import sleep

import httpx
from httpx_sse import connect_sse

TIME_LIMIT_S = 30
DEFAULT_RETRY_MS = 3000  # what a browser starts with before any `retry:` hint


def main() -> int:
    if len(sys.argv) != 4 or not sys.argv[3].isdigit():
        print(__doc__, file=sys.stderr)
        return 2
    base, topic, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    result = {
        "client": f"httpx {version('httpx')}, httpx-sse {version('httpx-sse')}",
        "connections": [],
        "events": [],
    }

    def give_up(reason: str) -> None:
        result["failure"] = reason
        print(json.dumps(result, indent=1), flush=True)
        sys.exit(1)

    signal.signal(signal.SIGALRM, lambda *_: give_up(f"timed out after {TIME_LIMIT_S} s"))
    signal.alarm(TIME_LIMIT_S)

    last_id, retry_ms = "", DEFAULT_RETRY_MS
    with httpx.Client(timeout=httpx.Timeout(10.0)) as client:
        while True:
            headers = {"Last-Event-ID": last_id} if last_id else {}
            conn = {"lastEventIdSent": last_id or None, "status": None, "retry": []}
            result["connections"].append(conn)
            url = f"{base}/events"
            with connect_sse(client, "GET", url, params={"topic": topic}, headers=headers) as es:
                conn["status"] = es.response.status_code
                if conn["status"] != 200:
                    give_up(f"status {conn['status']}")
                for sse in es.iter_sse():
                    # Everything httpx-sse yields is reported as an event: a block that held
                    # only `retry:` or a comment would show up here as a phantom one. The
                    # hint rides on the event whose block it joined.
                    if sse.retry is not None:
                        retry_ms = sse.retry
                        conn["retry"].append(sse.retry)
                    result["events"].append(
                        {
                            "type": sse.event,
                            "data": sse.data,
                            "lastEventId": sse.id,
                            "connection": len(result["connections"]),
                        }
                    )
                    last_id = sse.id
            # The server ended the stream. Done, or resume after its hinted delay.
            if len(result["events"]) >= count:
                break
            sleep(retry_ms / 1000)

    print(json.dumps(result, indent=1), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
