#!/usr/bin/env python3
"""Quick scale checks for an SSE server, independent of the bundled load generator.

Two measurements, both sampling only the server's own processes (--pid, repeatable;
for Nchan pass the master and every worker):

  idle    open N subscriber connections and hold them; report the server's RSS per
          idle connection: (VmRSS with N - VmRSS with none) / N, summed over --pid.
  fanout  open N subscribers, publish E events at R per second on one keep-alive
          connection, wait until every subscriber counted every event; report the
          server's CPU per delivery: (utime + stime) / (E * N).

Clients are spread over --procs processes, each binding its own source address
127.0.0.(10+i), so no process nears the 20,000 open-file limit. Everything stays on
loopback and every wait is bounded.

Examples (server already running):
  peercheck.py idle   --conns 5000 --pid 1234 --sub-url 'http://127.0.0.1:8083/events?topic={topic}'
  peercheck.py fanout --conns 10000 --events 200 --rate 20 --pid 1234 \\
      --sub-url 'http://127.0.0.1:8083/events?topic={topic}' \\
      --pub-url 'http://127.0.0.1:8083/publish?topic={topic}'
"""

import argparse
import multiprocessing as mp
import os
import selectors
import socket
import sys
import time
import urllib.parse

CLK_TCK = os.sysconf("SC_CLK_TCK")


def rss_kb(pids):
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


def cpu_seconds(pids):
    """(user, system) CPU seconds, summed over `pids`."""
    user = system = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        user += int(fields[11])  # utime (field 14)
        system += int(fields[12])  # stime (field 15)
    return user / CLK_TCK, system / CLK_TCK


def split_url(url):
    parts = urllib.parse.urlsplit(url)
    target = parts.path + ("?" + parts.query if parts.query else "")
    return parts.hostname, parts.port or 80, target


def client(index, count, sub_url, conn_pipe, sweep):
    """Holds `count` subscriber connections; counts events when asked."""
    host, port, target = split_url(sub_url)
    request = (
        f"GET {target} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        "Accept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n"
    ).encode()
    source = f"127.0.0.{10 + index}"
    socks, heads, counts, tails = [], {}, {}, {}
    sel = selectors.EpollSelector()
    for _ in range(count):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind((source, 0))
        s.connect((host, port))
        s.sendall(request)
        s.setblocking(False)
        socks.append(s)
        heads[s.fileno()] = b""
        counts[s.fileno()] = 0
        tails[s.fileno()] = b""
        sel.register(s, selectors.EVENT_READ)

    bad = 0

    def drain(timeout):
        nonlocal bad
        for key, _ in sel.select(timeout):
            fd = key.fd
            try:
                data = key.fileobj.recv(1 << 16)
            except BlockingIOError:
                continue
            if not data:
                sel.unregister(key.fileobj)
                bad += 1
                continue
            if heads[fd] is not None:
                head = heads[fd] + data
                end = head.find(b"\r\n\r\n")
                if end < 0:
                    heads[fd] = head
                    continue
                if not head.startswith(b"HTTP/1.1 200"):
                    bad += 1
                heads[fd] = None
                data = head[end + 4 :]
            chunk = tails[fd] + data
            counts[fd] += chunk.count(b"id: ")
            tails[fd] = chunk[-3:]

    deadline = time.monotonic() + 30
    while any(h is not None for h in heads.values()) and time.monotonic() < deadline:
        drain(0.1)
    conn_pipe.send(("ready", sum(h is None for h in heads.values()), bad))
    # sweep > 0: read what arrived every `sweep` seconds (fanout); else leave the
    # connections untouched until told to stop (idle).
    while True:
        if conn_pipe.poll(sweep if sweep > 0 else None):
            msg = conn_pipe.recv()
            if msg == "stop":
                break
            if msg == "count":
                drain(0)
                conn_pipe.send(("count", sum(counts.values()), min(counts.values()), bad))
                continue
        if sweep > 0:
            drain(0)
    for s in socks:
        s.close()


def start_clients(args, sweep):
    per = [args.conns // args.procs + (i < args.conns % args.procs) for i in range(args.procs)]
    sub_url = args.sub_url.replace("{topic}", args.topic)
    pipes, procs = [], []
    for i, n in enumerate(per):
        parent, child = mp.Pipe()
        p = mp.Process(target=client, args=(i, n, sub_url, child, sweep), daemon=True)
        p.start()
        pipes.append(parent)
        procs.append(p)
    ready = bad = 0
    for pipe in pipes:
        if not pipe.poll(60):
            sys.exit("a client process did not report in 60 s")
        _, ok, b = pipe.recv()
        ready += ok
        bad += b
    return pipes, procs, ready, bad


def stop_clients(pipes, procs):
    for pipe in pipes:
        pipe.send("stop")
    for p in procs:
        p.join(10)
        if p.is_alive():
            p.kill()


def idle(args):
    before = rss_kb(args.pid)
    pipes, procs, ready, bad = start_clients(args, 0)
    time.sleep(args.settle)
    after = rss_kb(args.pid)
    print(
        f"idle: conns={ready} bad={bad} rss_before={before} KiB rss_after={after} KiB "
        f"per_conn={(after - before) * 1024 / max(ready, 1):.0f} B"
    )
    stop_clients(pipes, procs)


def publish_loop(args):
    host, port, target = split_url(args.pub_url.replace("{topic}", args.topic))
    s = socket.create_connection((host, port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    start = time.monotonic()
    buf = b""
    for n in range(args.events):
        body = f"event-{n}-{'x' * max(args.payload - 8, 0)}"[: max(args.payload, 1)].encode()
        req = (
            f"POST {target} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Content-Type: text/plain\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        s.sendall(req)
        # Read one response: head, then Content-Length bytes (or chunked for none here).
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(4096)
            if not chunk:
                sys.exit("publisher connection closed")
            buf += chunk
        head, buf = buf.split(b"\r\n\r\n", 1)
        if not head.split(b" ", 2)[1].startswith(b"20"):
            sys.exit(f"publish failed: {head[:80]!r}")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(buf) < length:
            buf += s.recv(4096)
        buf = buf[length:]
        next_at = start + (n + 1) / args.rate
        delay = next_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    s.close()


def fanout(args):
    pipes, procs, ready, bad = start_clients(args, args.sweep)
    time.sleep(args.settle)
    cpu0, t0 = cpu_seconds(args.pid), time.monotonic()
    publish_loop(args)
    expected = args.events * ready
    deadline = time.monotonic() + args.wait
    while True:
        total, least = 0, None
        for pipe in pipes:
            pipe.send("count")
        for pipe in pipes:
            _, c, m, b = pipe.recv()
            total += c
            least = m if least is None else min(least, m)
        if total >= expected or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    cpu1, t1 = cpu_seconds(args.pid), time.monotonic()
    user, system = cpu1[0] - cpu0[0], cpu1[1] - cpu0[1]
    cpu = user + system
    print(
        f"fanout: conns={ready} bad={bad} events={args.events} rate={args.rate}/s "
        f"delivered={total}/{expected} least_per_conn={least} wall={t1 - t0:.1f}s "
        f"server_cpu={cpu:.2f}s (sys {100 * system / max(cpu, 1e-9):.0f}%) "
        f"per_delivery={cpu * 1e6 / max(total, 1):.2f} us"
    )
    stop_clients(pipes, procs)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["idle", "fanout"])
    ap.add_argument("--sub-url", required=True, help="subscribe URL template, {topic} replaced")
    ap.add_argument("--pub-url", help="publish URL template (fanout)")
    ap.add_argument("--topic", default="bench")
    ap.add_argument("--pid", type=int, action="append", required=True, help="server pid (repeatable)")
    ap.add_argument("--conns", type=int, default=5000)
    ap.add_argument("--procs", type=int, default=4, help="client processes")
    ap.add_argument("--events", type=int, default=200)
    ap.add_argument("--rate", type=float, default=20.0, help="events per second")
    ap.add_argument("--payload", type=int, default=32, help="event data bytes")
    ap.add_argument("--settle", type=float, default=3.0, help="seconds after connecting")
    ap.add_argument("--sweep", type=float, default=0.2, help="client read interval (s)")
    ap.add_argument("--wait", type=float, default=20.0, help="max seconds to await delivery")
    args = ap.parse_args()
    if args.procs > 240:
        sys.exit("--procs: at most 240 source addresses")
    if args.mode == "fanout":
        if not args.pub_url:
            sys.exit("fanout needs --pub-url")
        fanout(args)
    else:
        idle(args)


if __name__ == "__main__":
    main()
