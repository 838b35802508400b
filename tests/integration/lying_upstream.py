#!/usr/bin/python3
"""A lying registry for the integration tests (Python stdlib only).

Forwards every request to a real registry (--upstream http://127.0.0.1:PORT) and
answers with the real status and headers, but:
  * every blob body (GET /v2/<name>/blobs/<digest>) has one byte flipped (XOR 0xff) at
    the middle of the body; Content-Length and Docker-Content-Digest stay as they were;
  * every manifest fetched BY DIGEST (GET /v2/<name>/manifests/sha256:...) gets the same
    treatment; manifests fetched by tag pass through unchanged.
HEAD requests, /v2/, tags/list pass through unchanged.
With --honest nothing is changed (a plain forwarder). With --truncate, blob bodies are not
altered but cut: the full Content-Length is announced, half the bytes are sent, then the
connection is closed. --manifest REPO:TAG=FILE (repeatable)
serves FILE itself as that manifest (by tag and by its sha256 digest), e.g. one larger than
the 4 MiB that distribution 2.8 accepts or serves. --paginate-tags answers
tags/list?n=&last= with at most n tags and a Link header to the next page (distribution 2.8
ignores n).

Counters: GET /_stats -> {"blob_gets": N, "manifest_gets": N, "manifest_digest_gets": N,
"requests": N, "blob_bodies_ended": N, "last_blob_body_end": T}; the same JSON is rewritten to
--stats-file after every request. T is the Unix time (float seconds) at which the last blob
body GET ended (its last byte written, or the cut), 0 before any: the tests measure how
promptly the proxy cuts its clients after it.

Usage: lying_upstream.py --port PORT --upstream http://127.0.0.1:UP [--stats-file FILE]
                         [--honest | --truncate] [--manifest REPO:TAG=FILE ...] [--paginate-tags]
"""
import argparse
import hashlib
import http.client
import http.server
import json
import os
import re
import socketserver
import sys
import threading
import time
import urllib.parse

HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
       "proxy-authorization", "proxy-authenticate", "host"}
BLOB_RE = re.compile(r"^/v2/.+/blobs/[a-z0-9]+:[a-f0-9]+$")
MANIFEST_DIGEST_RE = re.compile(r"^/v2/.+/manifests/sha256:[a-f0-9]{64}$")
MANIFEST_RE = re.compile(r"^/v2/.+/manifests/[^/]+$")
TAGS_RE = re.compile(r"^/v2/(.+)/tags/list$")


class Stats:
    def __init__(self, path):
        self.lock = threading.Lock()
        self.path = path
        self.data = {"requests": 0, "blob_gets": 0, "manifest_gets": 0, "manifest_digest_gets": 0,
                     "blob_bodies_ended": 0, "last_blob_body_end": 0.0}
        self._write()

    def bump(self, *keys):
        with self.lock:
            for k in keys:
                self.data[k] += 1
            self._write()

    def body_ended(self):
        with self.lock:
            self.data["blob_bodies_ended"] += 1
            self.data["last_blob_body_end"] = time.time()
            self._write()

    def snapshot(self):
        with self.lock:
            return dict(self.data)

    def _write(self):
        if not self.path:
            return
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.data, f)
        os.replace(tmp, self.path)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "lying-upstream/1"

    def log_message(self, fmt, *args):
        sys.stderr.write("%s - - [%s] %s\n" % (self.client_address[0], self.log_date_time_string(), fmt % args))
        sys.stderr.flush()

    def do_GET(self):
        self._forward("GET")

    def do_HEAD(self):
        self._forward("HEAD")

    def _forward(self, method):
        path = urllib.parse.urlsplit(self.path).path
        stats = self.server.stats
        if path == "/_stats":
            body = json.dumps(stats.snapshot()).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if method == "GET":
                self.wfile.write(body)
            return
        extra = self.server.extra.get(path)
        if extra is not None and method in ("GET", "HEAD"):
            stats.bump("requests", "manifest_gets")
            body, media_type, digest = extra
            self.send_response(200)
            self.send_header("Content-Type", media_type)
            self.send_header("Docker-Content-Digest", digest)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if method == "GET":
                self.wfile.write(body)
            return
        m = TAGS_RE.match(path)
        if m and method == "GET" and self.server.paginate:
            stats.bump("requests")
            return self._tags_page(m.group(1))
        keys = ["requests"]
        lie = False
        if method == "GET" and BLOB_RE.match(path):
            keys.append("blob_gets")
            lie = True
        elif method == "GET" and MANIFEST_RE.match(path):
            keys.append("manifest_gets")
            if MANIFEST_DIGEST_RE.match(path):
                keys.append("manifest_digest_gets")
                lie = True
        stats.bump(*keys)

        up = self.server.upstream
        conn = http.client.HTTPConnection(up.hostname, up.port or 80, timeout=120)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
        headers["Host"] = up.netloc
        try:
            conn.request(method, self.path, headers=headers)
            resp = conn.getresponse()
        except OSError as e:
            self.send_error(502, "upstream: %s" % e)
            return
        length = resp.getheader("Content-Length")
        status = resp.status
        self.send_response(status, resp.reason)
        for k, v in resp.getheaders():
            if k.lower() in HOP or k.lower() == "content-length":
                continue
            self.send_header(k, v)
        if length is not None:
            self.send_header("Content-Length", length)
        elif method == "GET":
            # no length from upstream: read it all (registries always send one for blobs/manifests)
            data = resp.read()
            length = str(len(data))
            self.send_header("Content-Length", length)
            resp = _Buffered(data)
        self.end_headers()
        if method == "HEAD":
            conn.close()
            return
        total = int(length)
        ok_body = lie and status in (200, 206) and total > 0
        flip_at = total // 2 if (ok_body and not self.server.honest and not self.server.truncate) else -1
        stop_at = total // 2 if (ok_body and self.server.truncate and BLOB_RE.match(path)) else total
        pos = 0
        try:
            while pos < stop_at:
                chunk = resp.read(min(1 << 20, stop_at - pos))
                if not chunk:
                    break
                if 0 <= flip_at - pos < len(chunk):
                    i = flip_at - pos
                    chunk = chunk[:i] + bytes([chunk[i] ^ 0xFF]) + chunk[i + 1:]
                self.wfile.write(chunk)
                pos += len(chunk)
        except OSError:
            self.close_connection = True
        finally:
            conn.close()
        if pos < total:
            self.close_connection = True
            # the cut is the last thing the client sees: close before recording the time
            try:
                self.wfile.flush()
                self.connection.shutdown(2)
            except OSError:
                pass
        if method == "GET" and BLOB_RE.match(path):
            stats.body_ended()


    def _tags_page(self, name):
        q = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        up = self.server.upstream
        conn = http.client.HTTPConnection(up.hostname, up.port or 80, timeout=60)
        try:
            conn.request("GET", "/v2/%s/tags/list" % name)
            resp = conn.getresponse()
            body = resp.read()
        except OSError as e:
            self.send_error(502, "upstream: %s" % e)
            return
        finally:
            conn.close()
        link = None
        if resp.status == 200:
            tags = sorted(json.loads(body).get("tags") or [])
            if "last" in q:
                tags = [t for t in tags if t > q["last"][0]]
            if "n" in q:
                n = int(q["n"][0])
                if len(tags) > n:
                    tags = tags[:n]
                    link = '</v2/%s/tags/list?n=%d&last=%s>; rel="next"' % (name, n, urllib.parse.quote(tags[-1]))
            body = json.dumps({"name": name, "tags": tags}).encode()
        self.send_response(resp.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if link:
            self.send_header("Link", link)
        self.end_headers()
        self.wfile.write(body)


class _Buffered:
    def __init__(self, data):
        self.data, self.pos = data, 0

    def read(self, n):
        out = self.data[self.pos:self.pos + n]
        self.pos += len(out)
        return out


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--upstream", required=True)
    ap.add_argument("--stats-file", default="")
    ap.add_argument("--honest", action="store_true")
    ap.add_argument("--truncate", action="store_true")
    ap.add_argument("--paginate-tags", action="store_true")
    ap.add_argument("--manifest", action="append", default=[])
    a = ap.parse_args()
    extra = {}
    for spec in a.manifest:
        ref, path = spec.split("=", 1)
        repo, tag = ref.rsplit(":", 1)
        with open(path, "rb") as f:
            body = f.read()
        media_type = json.loads(body).get("mediaType", "application/vnd.oci.image.manifest.v1+json")
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        for r in (tag, digest):
            extra["/v2/%s/manifests/%s" % (repo, r)] = (body, media_type, digest)
    srv = Server(("127.0.0.1", a.port), Handler)
    srv.upstream = urllib.parse.urlsplit(a.upstream)
    srv.stats = Stats(a.stats_file)
    srv.honest = a.honest
    srv.truncate = a.truncate
    srv.paginate = a.paginate_tags
    srv.extra = extra
    sys.stderr.write("lying upstream on 127.0.0.1:%d -> %s\n" % (a.port, a.upstream))
    sys.stderr.flush()
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
