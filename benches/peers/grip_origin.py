#!/usr/bin/env python3
"""The application behind Pushpin in ringcast's peer benchmarks.

Pushpin is a proxy: it asks an origin what to do with every new request. This origin
answers `GET /sub/<topic>` with GRIP instructions that hold the connection open as an
SSE stream on channel <topic>, with a `:` comment every 15 s while the channel is
quiet (ringcast's heartbeat, Nchan's ping). Anything else gets 404. Events reach the
stream through Pushpin's publish API, not through here.

Usage: grip_origin.py PORT   (listens on 127.0.0.1:PORT until killed)
"""

import asyncio
import sys

HEAD_LIMIT = 16 * 1024
# The stream's first bytes: an SSE comment, so the client sees the stream open.
FIRST = b":ok\n\n"


def answer(request_line: bytes) -> bytes:
    parts = request_line.split(b" ")
    if len(parts) != 3 or parts[0] != b"GET" or not parts[1].startswith(b"/sub/"):
        return b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
    topic = parts[1][len(b"/sub/"):].split(b"?", 1)[0]
    if not topic or any(c in topic for c in b"\r\n ,;"):
        return b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
    return (
        b"HTTP/1.1 200 OK\r\n"
        b"Content-Type: text/event-stream\r\n"
        b"Cache-Control: no-cache\r\n"
        b"Grip-Hold: stream\r\n"
        b"Grip-Channel: " + topic + b"\r\n"
        b"Grip-Keep-Alive: :\\n\\n; format=cstring; timeout=15\r\n"
        b"Content-Length: %d\r\n\r\n" % len(FIRST) + FIRST
    )


class Origin(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
        self.buf = b""

    def data_received(self, data):
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buf) > HEAD_LIMIT:
                    self.transport.close()
                return
            head, self.buf = self.buf[:end], self.buf[end + 4:]
            self.transport.write(answer(head.split(b"\r\n", 1)[0]))


async def main(port: int):
    server = await asyncio.get_running_loop().create_server(
        Origin, "127.0.0.1", port, backlog=4096, reuse_address=True)
    print(f"grip origin listening on 127.0.0.1:{port}", flush=True)
    await server.serve_forever()


if __name__ == "__main__":
    if len(sys.argv) != 2 or not sys.argv[1].isdigit():
        sys.exit(__doc__)
    asyncio.run(main(int(sys.argv[1])))
