#!/usr/bin/python3
"""A scripted faulty registry for the fault suite (Python stdlib only, 127.0.0.1).

The first component of the repository name picks the behaviour (MODE/app):
  honest        a correct registry: manifest tag v1 (and by digest), config and layer blobs,
                tags/list, referrers (empty index); HEAD with Content-Length
  reset-body    manifest and blob GETs: full Content-Length, half the body, then a TCP reset
  stall-body    manifest and blob GETs: full Content-Length, half the body, then silence for
                --stall seconds, then close
  short-cl      Content-Length of half the body, then the whole body, then close
  long-cl       Content-Length of twice the body, the body, then close
  5xx           every /v2/ answer is 500, 502, 503 or 504 (in turn) with an HTML body
  429           every /v2/ answer is 429 with Retry-After: 7
  redirect-loop every /v2/ answer is 302 to itself
  redirect-bad  every /v2/ answer is 302 to ftp://127.0.0.1/x
  bad-json      manifests, tags/list and referrers are truncated JSON; blob GETs are 404 whose
                error body is truncated JSON
  wrong-types   valid JSON of the wrong types: manifest mediaType 5, an index whose platform.os is
                a number, tags/list {"tags": {"a": 1}}, referrers {"manifests": [{"digest": 5}]},
                blob 404 with {"errors": [{"code": 5, "message": []}]}
  head-no-cl    like honest, but a blob HEAD answers 200 without Content-Length
  trickle       blob GETs: the layer's Content-Length, then one byte every 0.2 s until the client
                closes the connection (review M6: a fetch without a total deadline never ends)
  huge-cl       blob GETs: Content-Length 10^12, then the layer's bytes and close (a size bound
                must refuse it at the headers)
  trickle-any   like trickle, for ANY blob digest, with a Content-Length of 4 MiB (slow blobs
                for clients that hang up after the headers)
  chunked-forever
                blob GETs: chunked, 64 KiB chunks of zeros until the client closes (review M6's
                disk variant: a size bound must cut it)
  token-int, token-null, token-array, token-badjson, token-500
                every /v2/ answer is 401 with a Bearer challenge whose realm
                (/token/KIND on this server) answers {"token": 1}, {"token": null}, [],
                '{"token":', or HTTP 500
Each mode has its own config and layer (different bytes, so different digests).

GET /_info  -> {"modes": {MODE: {"manifest": D, "config": D, "layer": D, "layer_size": N}}}
GET /_stats -> {"MODE": {"manifest": N, "blob": N, "token": N, "other": N, "closed": N}, ...}
               (closed: endless blob answers whose client closed the connection)

Usage: faulty_upstream.py --port PORT [--stall SECONDS] [--layer-bytes N]
"""
import argparse
import hashlib
import http.server
import json
import re
import socket
import struct
import sys
import threading
import time

MODES = ["honest", "reset-body", "stall-body", "short-cl", "long-cl", "5xx", "429", "redirect-loop",
         "redirect-bad", "bad-json", "wrong-types", "head-no-cl", "trickle", "trickle-any", "huge-cl",
         "chunked-forever",
         "token-int", "token-null", "token-array", "token-badjson", "token-500"]
TOKEN_BODIES = {"int": b'{"token": 1}', "null": b'{"token": null}', "array": b"[]", "badjson": b'{"token":'}
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
PATH_RE = re.compile(r"^/v2/([a-z0-9-]+)/app/(manifests|blobs|tags|referrers)(?:/(.*))?$")


def sha(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


def layer_bytes(mode, n):
    seed = hashlib.sha256(mode.encode()).digest()
    out = bytearray()
    block = seed
    while len(out) < n:
        block = hashlib.sha256(block).digest()
        out += block * 64
    return bytes(out[:n])


class Image:
    def __init__(self, mode, n):
        self.config = json.dumps({"architecture": "amd64", "os": "linux", "mode": mode}).encode()
        self.layer = layer_bytes(mode, n)
        self.manifest = json.dumps({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": sha(self.config), "size": len(self.config)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha(self.layer),
                        "size": len(self.layer)}]}, indent=2).encode()
        self.blobs = {sha(self.config): self.config, sha(self.layer): self.layer}


class State:
    def __init__(self, layer_n, stall):
        self.images = {m: Image(m, layer_n) for m in MODES}
        self.stall = stall
        self.lock = threading.Lock()
        self.stats = {m: {"manifest": 0, "blob": 0, "token": 0, "other": 0, "closed": 0} for m in MODES}
        self.turn = 0

    def bump(self, mode, kind):
        with self.lock:
            if mode in self.stats:
                self.stats[mode][kind] += 1

    def next_5xx(self):
        with self.lock:
            self.turn += 1
            return [500, 502, 503, 504][self.turn % 4]


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "faulty-upstream/1"

    def log_message(self, fmt, *args):
        sys.stderr.write("%s [%s] %s\n" % (self.client_address[0], self.log_date_time_string(), fmt % args))
        sys.stderr.flush()

    def do_GET(self):
        self.route(head=False)

    def do_HEAD(self):
        self.route(head=True)

    # ------------------------------------------------------------ answers
    def send(self, status, body=b"", ctype="application/json", headers=None, head=False, length=None):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def error(self, status, code, head=False, headers=None):
        body = json.dumps({"errors": [{"code": code, "message": code.lower(), "detail": None}]}).encode()
        self.send(status, body, headers=headers, head=head)

    def faulty_body(self, mode, body, ctype, headers):
        """reset-body, stall-body, short-cl and long-cl for one GET answer."""
        half = len(body) // 2
        length = {"short-cl": half, "long-cl": 2 * len(body)}.get(mode, len(body))
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(length))
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        if mode in ("short-cl", "long-cl"):
            self.wfile.write(body)
            self.wfile.flush()
            return
        self.wfile.write(body[:half])
        self.wfile.flush()
        if mode == "stall-body":
            time.sleep(self.server.state.stall)
            return
        # reset-body: an RST instead of a FIN
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()

    # ------------------------------------------------------------ routing
    def route(self, head):
        st = self.server.state
        path = self.path.split("?", 1)[0]
        if path == "/_info":
            info = {m: {"manifest": sha(i.manifest), "config": sha(i.config), "layer": sha(i.layer),
                        "layer_size": len(i.layer)} for m, i in st.images.items()}
            return self.send(200, json.dumps({"modes": info}).encode(), head=head)
        if path == "/_stats":
            with st.lock:
                body = json.dumps(st.stats).encode()
            return self.send(200, body, head=head)
        if path.startswith("/token/"):
            kind = path[len("/token/"):]
            st.bump("token-" + kind, "token")
            if kind == "500":
                return self.send(500, b"<html>token service down</html>", "text/html", head=head)
            return self.send(200, TOKEN_BODIES.get(kind, b"{}"), head=head)
        if path in ("/v2", "/v2/"):
            return self.send(200, b"{}", head=head)
        m = PATH_RE.match(path)
        if not m:
            return self.error(404, "NAME_UNKNOWN", head)
        mode, op, ref = m.group(1), m.group(2), m.group(3) or ""
        if mode not in st.images:
            return self.error(404, "NAME_UNKNOWN", head)
        st.bump(mode, {"manifests": "manifest", "blobs": "blob"}.get(op, "other"))
        img = st.images[mode]
        if mode == "5xx":
            return self.send(st.next_5xx(), b"<html>upstream on fire</html>", "text/html", head=head)
        if mode == "429":
            return self.error(429, "TOOMANYREQUESTS", head, {"Retry-After": "7"})
        if mode == "redirect-loop":
            return self.send(302, b"", headers={"Location": self.path}, head=head)
        if mode == "redirect-bad":
            return self.send(302, b"", headers={"Location": "ftp://127.0.0.1/x"}, head=head)
        if mode.startswith("token-"):
            realm = "http://127.0.0.1:%d/token/%s" % (self.server.server_address[1], mode[len("token-"):])
            return self.send(401, b'{"errors":[{"code":"UNAUTHORIZED","message":"auth","detail":null}]}',
                             headers={"WWW-Authenticate": 'Bearer realm="%s",service="faulty"' % realm}, head=head)
        if op == "manifests":
            return self.manifest(mode, img, ref, head)
        if op == "blobs":
            return self.blob(mode, img, ref, head)
        if op == "tags":
            if mode == "bad-json":
                return self.send(200, b'{"name":"x","tags":["v1"', head=head)
            if mode == "wrong-types":
                return self.send(200, b'{"name":"%s/app","tags":{"a":1}}' % mode.encode(), head=head)
            return self.send(200, json.dumps({"name": mode + "/app", "tags": ["v1"]}).encode(), head=head)
        # referrers
        if mode == "bad-json":
            return self.send(200, b'{"schemaVersion":2,"manifests":[', OCI_INDEX, head=head)
        if mode == "wrong-types":
            return self.send(200, b'{"schemaVersion":2,"manifests":[{"digest":5}]}', OCI_INDEX, head=head)
        return self.send(200, json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}).encode(),
                         OCI_INDEX, head=head)

    def manifest(self, mode, img, ref, head):
        if ref not in ("v1", sha(img.manifest)):
            return self.error(404, "MANIFEST_UNKNOWN", head)
        body, ctype = img.manifest, OCI_MANIFEST
        if mode == "bad-json":
            body = img.manifest[: len(img.manifest) // 2]
        elif mode == "wrong-types":
            body = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
                {"mediaType": OCI_MANIFEST, "digest": sha(b"x"), "size": 1,
                 "platform": {"os": 5, "architecture": "amd64"}}]}).encode()
            ctype = OCI_INDEX
        headers = {} if mode in ("bad-json", "wrong-types") else {"Docker-Content-Digest": sha(body)}
        if mode in ("reset-body", "stall-body", "short-cl", "long-cl") and not head:
            return self.faulty_body(mode, body, ctype, headers)
        return self.send(200, body, ctype, headers, head=head)

    def blob(self, mode, img, ref, head):
        if mode == "trickle-any" and not head:
            return self.endless_body("trickle", b"\0" * (4 << 20), stat_mode=mode)
        body = img.blobs.get(ref)
        if body is None or mode in ("bad-json", "wrong-types"):
            if mode == "bad-json":
                return self.send(404, b'{"errors":[{"code":', head=head)
            if mode == "wrong-types":
                return self.send(404, b'{"errors":[{"code":5,"message":[]}]}', head=head)
            return self.error(404, "BLOB_UNKNOWN", head)
        headers = {"Docker-Content-Digest": ref}
        if head and mode == "head-no-cl":
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Docker-Content-Digest", ref)
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            return None
        if mode in ("reset-body", "stall-body", "short-cl", "long-cl") and not head:
            return self.faulty_body(mode, body, "application/octet-stream", headers)
        if mode in ("trickle", "huge-cl", "chunked-forever") and not head:
            return self.endless_body(mode, body)
        return self.send(200, body, "application/octet-stream", headers, head=head)

    def endless_body(self, mode, body, stat_mode=None):
        """trickle, huge-cl and chunked-forever for one blob GET (bounded: at most 30 minutes)."""
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        if mode == "chunked-forever":
            self.send_header("Transfer-Encoding", "chunked")
        else:  # trickle: the layer's true length, at a byte every 0.2 s more than 4 days
            self.send_header("Content-Length", str(10 ** 12 if mode == "huge-cl" else len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        try:
            if mode == "huge-cl":
                self.wfile.write(body)
                self.wfile.flush()
                return
            zeros = b"\0" * 65536
            end = time.time() + 1800
            while time.time() < end:
                if mode == "trickle":
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(0.2)
                else:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(zeros), zeros))
                    self.wfile.flush()
        except OSError:
            self.server.state.bump(stat_mode or mode, "closed")


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        # a client that went away (or our own reset) is not worth a traceback
        sys.stderr.write("connection from %s ended: %s\n" % (client_address, sys.exc_info()[1]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--stall", type=float, default=20.0)
    ap.add_argument("--layer-bytes", type=int, default=2 * 1024 * 1024 + 17)
    a = ap.parse_args()
    srv = Server(("127.0.0.1", a.port), Handler)
    srv.state = State(a.layer_bytes, a.stall)
    srv.serve_forever()


if __name__ == "__main__":
    main()
