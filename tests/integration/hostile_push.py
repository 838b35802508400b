#!/usr/bin/python3
"""Pushes what a hostile pusher would into a plain-http registry (Python stdlib only).

Based on push.py and sigbomb.py of the security review of Portcullis at 684bc4b
(docs/review-security.md in the review folder, sections C1 and M5), reshaped into
subcommands so that each attack of test_hostile_pusher.sh gets its own repository and
its own unsigned image. Every command prints one JSON object on stdout.

  hostile_push.py REG REPO image --seed S [--tag T]... [--extra JSON] [--config-media-type MT]
      an UNSIGNED runnable image: one uncompressed tar layer holding /evil.sh, whose text
      contains the marker PORTCULLIS-HOSTILE-LAYER (a client body that contains the marker
      holds the layer's bytes) and S (so every image has its own layer digest); the
      manifest is the plain OCI image manifest merged with the JSON object --extra; tags
      may contain {hex} (the manifest's own sha256 hex), e.g. 'sha256-{hex}.sig'.
      -> {"digest", "size", "layer", "layer_size", "config", "config_size"}
  hostile_push.py REG REPO index --child DIGEST:SIZE[:[MEDIATYPE][:ARTIFACTTYPE]]... [--artifact-type AT]
                                 [--tag T]... [--extra JSON]
      an OCI index listing the children (with artifactType AT on every descriptor that
      does not name its own), merged with the JSON object --extra.
      -> {"digest", "size"}
  hostile_push.py REG REPO fakesig --target DIGEST --payload DIGEST:SIZE [--tag T]... [--extra JSON]
      a manifest shaped like a cosign .sig (OCI image config media type, one
      simple-signing layer) whose "payload" is any blob, merged with --extra, under the
      tags given (default: sha256-<target hex>.sig).
      -> {"digest", "size", "tag"}
  hostile_push.py REG REPO sigbomb --target DIGEST --layers N [--distinct]
      a cosign .sig for TARGET (tag sha256-<hex>.sig) with N simple-signing layers carrying
      garbage signatures: all pointing at one payload blob, or (--distinct) at N different
      payload blobs. -> {"digest", "size", "tag", "payloads"}

REG is http://127.0.0.1:PORT. Exit status 1 with a message on any registry refusal.
"""
import argparse
import hashlib
import io
import json
import sys
import tarfile
import urllib.error
import urllib.request

OCI_M = "application/vnd.oci.image.manifest.v1+json"
OCI_I = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
MARK = "PORTCULLIS-HOSTILE-LAYER"
MAX_MANIFEST = 4 * 1024 * 1024


def req(method, url, data=None, headers=None):
    r = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        return urllib.request.urlopen(r, timeout=60)
    except urllib.error.HTTPError as e:
        body = e.read(300).decode("utf-8", "replace")
        sys.exit("%s %s: HTTP %d %s" % (method, url, e.code, body))


def sha(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def put_blob(reg, repo, data):
    d = sha(data)
    loc = req("POST", "%s/v2/%s/blobs/uploads/" % (reg, repo), b"").headers["Location"]
    if loc.startswith("/"):
        loc = reg + loc
    req("PUT", loc + ("&" if "?" in loc else "?") + "digest=" + d, data,
        {"Content-Type": "application/octet-stream"})
    return d


def put_manifest(reg, repo, ref, body, media_type):
    if len(body) > MAX_MANIFEST:
        sys.exit("manifest of %d bytes is over the 4 MiB registries accept" % len(body))
    req("PUT", "%s/v2/%s/manifests/%s" % (reg, repo, ref), body, {"Content-Type": media_type})
    return sha(body)


def dumps(obj):
    return json.dumps(obj, separators=(",", ":")).encode()


def tags_for(templates, digest):
    return [t.replace("{hex}", digest.split(":", 1)[1]) for t in templates]


def cmd_image(a):
    script = ("#!/bin/sh\necho '%s %s: this image was never signed'\n" % (MARK, a.seed)).encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as t:
        ti = tarfile.TarInfo("evil.sh")
        ti.size, ti.mode, ti.mtime = len(script), 0o755, 0
        t.addfile(ti, io.BytesIO(script))
    layer = buf.getvalue()
    ld = put_blob(a.reg, a.repo, layer)
    cfg = dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/evil.sh"]},
                 "rootfs": {"type": "layers", "diff_ids": [ld]}})
    cd = put_blob(a.reg, a.repo, cfg)
    m = {"schemaVersion": 2, "mediaType": OCI_M,
         "config": {"mediaType": a.config_media_type, "digest": cd, "size": len(cfg)},
         "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": ld, "size": len(layer)}]}
    if a.extra:
        m.update(json.loads(a.extra))
    body = dumps(m)
    d = sha(body)
    for tag in tags_for(a.tag, d) or [d]:
        put_manifest(a.reg, a.repo, tag, body, OCI_M)
    return {"digest": d, "size": len(body), "layer": ld, "layer_size": len(layer), "config": cd,
            "config_size": len(cfg)}


def cmd_index(a):
    ms = []
    for c in a.child:
        parts = c.split(":")
        if len(parts) < 3:
            sys.exit("--child DIGEST:SIZE[:MEDIATYPE], e.g. sha256:<hex>:512")
        desc = {"mediaType": parts[3] if len(parts) > 3 and parts[3] else OCI_M,
                "digest": parts[0] + ":" + parts[1], "size": int(parts[2])}
        if len(parts) > 4 or a.artifact_type:
            desc["artifactType"] = parts[4] if len(parts) > 4 else a.artifact_type
        ms.append(desc)
    idx = {"schemaVersion": 2, "mediaType": OCI_I, "manifests": ms}
    if a.extra:
        idx.update(json.loads(a.extra))
    body = dumps(idx)
    d = sha(body)
    for tag in tags_for(a.tag, d) or [d]:
        put_manifest(a.reg, a.repo, tag, body, OCI_I)
    return {"digest": d, "size": len(body)}


def sig_tag(target):
    return "sha256-" + target.split(":", 1)[1] + ".sig"


def sig_config(reg, repo):
    cfg = dumps({"architecture": "", "config": {}, "created": "0001-01-01T00:00:00Z", "os": "",
                 "rootfs": {"type": "layers", "diff_ids": []}})
    return put_blob(reg, repo, cfg), len(cfg)


def cmd_fakesig(a):
    pd, ps = a.payload.rsplit(":", 1)
    cd, cs = sig_config(a.reg, a.repo)
    m = {"schemaVersion": 2, "mediaType": OCI_M,
         "config": {"mediaType": OCI_CONFIG, "digest": cd, "size": cs},
         "layers": [{"mediaType": SIMPLESIGNING, "digest": pd, "size": int(ps),
                     "annotations": {"dev.cosignproject.cosign/signature": "MEUCIQ=="}}]}
    if a.extra:
        m.update(json.loads(a.extra))
    body = dumps(m)
    tags = a.tag or [sig_tag(a.target)]
    for tag in tags:
        put_manifest(a.reg, a.repo, tag, body, OCI_M)
    return {"digest": sha(body), "size": len(body), "tag": tags[0]}


def cmd_sigbomb(a):
    def payload(i):
        opt = {"n": i} if a.distinct else None
        return dumps({"critical": {"identity": {"docker-reference": "upstream.test/" + a.repo},
                                   "image": {"docker-manifest-digest": a.target},
                                   "type": "cosign container image signature"}, "optional": opt})
    count = a.layers if a.distinct else 1
    blobs = []
    for i in range(count):
        p = payload(i)
        blobs.append((put_blob(a.reg, a.repo, p), len(p)))
    cd, cs = sig_config(a.reg, a.repo)
    layers = [{"mediaType": SIMPLESIGNING, "digest": blobs[i % count][0], "size": blobs[i % count][1],
               "annotations": {"dev.cosignproject.cosign/signature": "MEUCIQ=="}} for i in range(a.layers)]
    body = dumps({"schemaVersion": 2, "mediaType": OCI_M,
                  "config": {"mediaType": OCI_CONFIG, "digest": cd, "size": cs}, "layers": layers})
    tag = sig_tag(a.target)
    return {"digest": put_manifest(a.reg, a.repo, tag, body, OCI_M), "size": len(body), "tag": tag,
            "payloads": count}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("reg")
    ap.add_argument("repo")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("image")
    p.add_argument("--seed", required=True)
    p.add_argument("--tag", action="append", default=[])
    p.add_argument("--extra", default="")
    p.add_argument("--config-media-type", default=OCI_CONFIG)
    p = sub.add_parser("index")
    p.add_argument("--child", action="append", required=True)
    p.add_argument("--artifact-type", default="")
    p.add_argument("--tag", action="append", default=[])
    p.add_argument("--extra", default="")
    p = sub.add_parser("fakesig")
    p.add_argument("--target", required=True)
    p.add_argument("--payload", required=True)
    p.add_argument("--tag", action="append", default=[])
    p.add_argument("--extra", default="")
    p = sub.add_parser("sigbomb")
    p.add_argument("--target", required=True)
    p.add_argument("--layers", type=int, required=True)
    p.add_argument("--distinct", action="store_true")
    a = ap.parse_args()
    if a.cmd == "sigbomb" and not 1 <= a.layers <= 20000:
        sys.exit("--layers must be 1..20000")
    out = {"image": cmd_image, "index": cmd_index, "fakesig": cmd_fakesig, "sigbomb": cmd_sigbomb}[a.cmd](a)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
