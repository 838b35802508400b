#!/usr/bin/env python3
"""Connection loads for bench/connections.sh, against a server on 127.0.0.1.

hold PORT IDLE SLOW READY_FILE PATH
    Opens IDLE keep-alive connections that each make one GET of PATH and then
    stay idle, and SLOW slowloris connections that send a request head one
    header line every 2 s and never finish it (re-opened when the server cuts
    them, as an attacker would). Writes READY_FILE once all are open; runs until
    SIGTERM, then prints JSON: idle still open, slowloris re-opens.

spread PORT CONNS SECONDS PATH [ACCEPT]
    CONNS keep-alive connections, each sending GETs of PATH one after another
    for SECONDS; prints JSON: requests per connection (min, p10, median, max),
    connections that got no answer at all, errors, total requests/s."""
import asyncio
import json
import selectors
import signal
import socket
import statistics
import sys
import time


def hold(port, idle_n, slow_n, ready_file, path):
    sel = selectors.DefaultSelector()
    idle = []
    request = f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode()
    for _ in range(idle_n):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(request)
        s.recv(65536)  # the answer's first bytes; the rest is drained below
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, "idle")
        idle.append(s)
    slow = {}
    reopened = 0

    def open_slow():
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: bench\r\n".encode())
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, "slow")
        slow[s.fileno()] = s

    for _ in range(slow_n):
        open_slow()
    with open(ready_file, "w") as f:
        f.write("ready\n")
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    closed_idle = 0
    next_trickle = time.monotonic() + 2
    while not stop:
        for key, _ in sel.select(0.2):
            s = key.fileobj
            try:
                data = s.recv(65536)
            except OSError:
                data = b""
            if data:
                continue
            sel.unregister(s)
            if key.data == "idle":
                closed_idle += 1
            else:
                slow.pop(s.fileno(), None)
                reopened += 1
                try:
                    open_slow()
                except OSError:
                    pass
            s.close()
        if time.monotonic() >= next_trickle:
            next_trickle = time.monotonic() + 2
            for s in list(slow.values()):
                try:
                    s.send(b"X-Trickle: 1\r\n")
                except OSError:
                    pass
    print(json.dumps({"idle_open": idle_n - closed_idle, "idle_closed": closed_idle,
                      "slow_open": len(slow), "slow_reopened": reopened}))


async def one_conn(port, path, accept, deadline, counts, i, errors):
    try:
        r, w = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        errors.append("connect")
        return
    req = f"GET {path} HTTP/1.1\r\nHost: bench\r\nAccept: {accept}\r\n\r\n".encode()
    try:
        while time.monotonic() < deadline:
            w.write(req)
            head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 10)
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            if length:
                await asyncio.wait_for(r.readexactly(length), 10)
            if not head.startswith(b"HTTP/1.1 200"):
                errors.append(head.split(b"\r\n", 1)[0].decode(errors="replace"))
                break
            counts[i] += 1
    except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as e:
        errors.append(type(e).__name__)
    w.close()


async def spread(port, conns, seconds, path, accept):
    counts = [0] * conns
    errors = []
    start = time.monotonic()
    deadline = start + seconds
    await asyncio.gather(*(one_conn(port, path, accept, deadline, counts, i, errors) for i in range(conns)))
    took = time.monotonic() - start
    s = sorted(counts)
    print(json.dumps({"connections": conns, "requests": sum(counts), "req_per_s": round(sum(counts) / took, 1),
                      "min": s[0], "p10": s[len(s) // 10], "median": statistics.median(s), "max": s[-1],
                      "unserved": sum(1 for c in counts if c == 0), "errors": len(errors),
                      "error_kinds": sorted(set(errors))[:5]}))


def main():
    mode = sys.argv[1]
    if mode == "hold":
        hold(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], sys.argv[6])
    elif mode == "spread":
        accept = sys.argv[6] if len(sys.argv) > 6 else "*/*"
        asyncio.run(spread(int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), sys.argv[5], accept))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
