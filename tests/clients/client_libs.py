"""What the Python programs of tests/client_libs.rs share: the command line, the record
of what the library reported and when, when to stop, and the one JSON report.

usage: python PROGRAM BASE_URL TOPIC COUNT QUIET_MS [LAST_EVENT_ID]

The program subscribes to TOPIC (sending LAST_EVENT_ID as `Last-Event-ID` when given)
and records every event its library reports, with the wall-clock time it came (ms since
the epoch). Once COUNT events are in it listens QUIET_MS more, so that whatever the
library reports after the last expected event (an empty event made of a heartbeat, a
duplicate) is still caught; then it prints the report and exits 0. If the stream ends or
the library fails first, or after TIME_LIMIT_S, it prints what it has, with a failure,
and exits 1.

The library reads in a thread of its own: most block in a read with no way to stop them
from outside, and this thread has to keep the time.
"""

import json
import os
import sys
import threading
import time
from importlib.metadata import version
from urllib.parse import urlencode

TIME_LIMIT_S = 20


class Run:
    """One run: where to subscribe, and what came."""

    def __init__(self, argv):
        if len(argv) not in (5, 6) or not argv[3].isdigit() or not argv[4].isdigit():
            print(__doc__, file=sys.stderr)
            sys.exit(2)
        base, topic = argv[1], argv[2]
        self.url = f"{base}/events?{urlencode({'topic': topic})}"
        self.count, self.quiet_s = int(argv[3]), int(argv[4]) / 1000
        self.last_event_id = argv[5] if len(argv) == 6 else None
        self.events = []
        self.errors = []
        self.lock = threading.Lock()

    def record(self, type_, data, last_event_id):
        """Notes one event as the library reported it."""
        at = time.time_ns() // 1_000_000
        with self.lock:
            self.events.append(
                {"type": type_, "data": data, "lastEventId": last_event_id, "at": at}
            )

    def error(self, text):
        """Notes an error the library reported without failing (it reconnects by itself)."""
        with self.lock:
            self.errors.append(text)

    def received(self):
        with self.lock:
            return len(self.events)


def versions(*packages):
    """`a 1.0 over b 2.0`: the installed versions, for the report."""
    return " over ".join(f"{p} {version(p)}" for p in packages)


def main(client, listen):
    """Runs `listen(run)` (which reads the stream and calls run.record for each event)
    until COUNT events and QUIET_MS after them, then reports and exits."""
    run = Run(sys.argv)
    ended = []

    def reader():
        try:
            listen(run)
            ended.append("the stream ended")
        except BaseException as e:  # reported, not raised: the report is the output
            ended.append(f"{type(e).__name__}: {e}")

    threading.Thread(target=reader, daemon=True).start()
    deadline = time.monotonic() + TIME_LIMIT_S
    quiet_until = None
    failure = None
    while True:
        now = time.monotonic()
        if quiet_until is None and run.received() >= run.count:
            quiet_until = now + run.quiet_s
        if quiet_until is not None and now >= quiet_until:
            break
        if ended:
            failure = ended[0]
            break
        if now >= deadline:
            failure = f"timed out after {TIME_LIMIT_S} s"
            break
        time.sleep(0.01)
    with run.lock:
        result = {"client": client, "events": list(run.events), "errors": list(run.errors)}
    if failure:
        result["failure"] = failure
    sys.stdout.write(json.dumps(result, indent=1) + "\n")
    sys.stdout.flush()
    # The reader may be blocked in a read: leave without waiting for it.
    os._exit(1 if failure else 0)
