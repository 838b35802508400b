#!/usr/bin/env python3
"""Holds connections open against a server on 127.0.0.1, as a fleet of idle
keep-alive clients and slowloris attackers would.

usage: hold_connections.py PORT IDLE HALF READY_FILE SECONDS

Opens IDLE connections that send nothing and HALF connections that send a
request line and one header but never end the head, writes "ready" to
READY_FILE, holds them for SECONDS (bounded), then prints one JSON line:
how many of each the server had closed by then, and whether any of them got
an HTTP answer (a half-sent head must never be answered)."""
import json
import select
import socket
import sys
import time


def main():
    port, idle_n, half_n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    ready_file, seconds = sys.argv[4], min(float(sys.argv[5]), 600.0)
    idle, half, failed = [], [], 0
    for group, n, head in ((idle, idle_n, b""), (half, half_n, b"GET /v2/ HTTP/1.1\r\nHost: x\r\n")):
        for _ in range(n):
            s = socket.socket()
            s.settimeout(5)
            try:
                s.connect(("127.0.0.1", port))
                if head:
                    s.sendall(head)
            except OSError:
                failed += 1
                s.close()
                continue
            s.setblocking(False)
            group.append(s)
    with open(ready_file, "w") as f:
        f.write("ready\n")
    closed = {id(s): False for s in idle + half}
    answered = 0
    deadline = time.monotonic() + seconds
    by_fd = {s.fileno(): s for s in idle + half}
    poller = select.poll()
    for fd in by_fd:
        poller.register(fd, select.POLLIN)
    while time.monotonic() < deadline and not all(closed.values()):
        for fd, _ in poller.poll(200):
            s = by_fd[fd]
            try:
                data = s.recv(4096)
            except OSError:
                data = b""
            if data.startswith(b"HTTP/"):
                answered += 1
            if not data:
                closed[id(s)] = True
                poller.unregister(fd)
    print(json.dumps({
        "idle_opened": len(idle), "half_opened": len(half), "connect_failed": failed,
        "idle_closed": sum(closed[id(s)] for s in idle),
        "half_closed": sum(closed[id(s)] for s in half),
        "answered": answered}))
    for s in idle + half:
        s.close()


if __name__ == "__main__":
    main()
