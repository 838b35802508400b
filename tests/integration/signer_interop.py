#!/usr/bin/python3
"""Independent cosign-format code for test_signer.sh, written from formats.md §2 alone
(Debian's python3-cryptography; no Portcullis code).

  signer_interop.py payload REF DIGEST [KEY=VALUE ...]   print the Go json.Marshal payload
  signer_interop.py keygen DIR                           DIR/py.pem (PKCS#8) + DIR/py.pub (PKIX)
  signer_interop.py sign KEY_PEM PAYLOAD_FILE            print base64 ECDSA-P256/SHA-256 DER signature
  signer_interop.py verify PUB_PEM PAYLOAD_FILE SIG_B64  exit 0 when the signature verifies
  signer_interop.py sigimage PAYLOAD_FILE SIG_B64 DIR    DIR/config.json + DIR/manifest.json, as cosign
                                                         (go-containerregistry) writes them
  signer_interop.py check-payload PAYLOAD_FILE DIGEST    exit 0 when the payload has exactly cosign's
                                                         shape and names DIGEST
"""
import base64
import hashlib
import json
import os
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec


def go_json(obj):
    """Compact JSON as Go's json.Marshal writes it: HTML-escaped <, >, &, escaped U+2028/9,
    raw UTF-8, lowercase \\u00xx for control characters (Python's short escapes for
    \\b \\f \\n \\r \\t match Go >= 1.22)."""
    s = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                    ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        s = s.replace(ch, esc)
    return s.encode("utf-8")


def payload(ref, digest, annotations):
    optional = None
    if annotations:
        optional = {k: annotations[k] for k in sorted(annotations, key=lambda k: k.encode("utf-8"))}
    return go_json({
        "critical": {
            "identity": {"docker-reference": ref},
            "image": {"docker-manifest-digest": digest},
            "type": "cosign container image signature",
        },
        "optional": optional,
    })


def sha256(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


def main(argv):
    cmd = argv[1]
    if cmd == "payload":
        ann = {}
        for kv in argv[4:]:
            k, v = kv.split("=", 1)
            ann[k] = v
        sys.stdout.buffer.write(payload(argv[2], argv[3], ann))
    elif cmd == "keygen":
        key = ec.generate_private_key(ec.SECP256R1())
        with open(os.path.join(argv[2], "py.pem"), "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
        with open(os.path.join(argv[2], "py.pub"), "wb") as f:
            f.write(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo))
    elif cmd == "sign":
        with open(argv[2], "rb") as f:
            key = serialization.load_pem_private_key(f.read(), password=None)
        with open(argv[3], "rb") as f:
            data = f.read()
        print(base64.b64encode(key.sign(data, ec.ECDSA(hashes.SHA256()))).decode())
    elif cmd == "verify":
        with open(argv[2], "rb") as f:
            pub = serialization.load_pem_public_key(f.read())
        with open(argv[3], "rb") as f:
            data = f.read()
        try:
            pub.verify(base64.b64decode(argv[4], validate=True), data, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            print("signature does not verify", file=sys.stderr)
            return 1
        print("verified")
    elif cmd == "sigimage":
        with open(argv[2], "rb") as f:
            data = f.read()
        out = argv[4]
        config = go_json({
            "architecture": "", "created": "0001-01-01T00:00:00Z",
            "history": [{"created": "0001-01-01T00:00:00Z"}], "os": "",
            "rootfs": {"type": "layers", "diff_ids": [sha256(data)]}, "config": {},
        })
        manifest = go_json({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": len(config),
                       "digest": sha256(config)},
            "layers": [{"mediaType": "application/vnd.dev.cosign.simplesigning.v1+json", "size": len(data),
                        "digest": sha256(data),
                        "annotations": {"dev.cosignproject.cosign/signature": argv[3]}}],
        })
        with open(os.path.join(out, "config.json"), "wb") as f:
            f.write(config)
        with open(os.path.join(out, "manifest.json"), "wb") as f:
            f.write(manifest)
    elif cmd == "check-payload":
        with open(argv[2], "rb") as f:
            p = json.loads(f.read())
        assert set(p) == {"critical", "optional"}, p
        assert set(p["critical"]) == {"identity", "image", "type"}, p
        assert set(p["critical"]["image"]) == {"docker-manifest-digest"}, p
        assert set(p["critical"]["identity"]) == {"docker-reference"}, p
        assert p["critical"]["type"] == "cosign container image signature", p
        assert p["critical"]["image"]["docker-manifest-digest"] == argv[3], p
        print("payload ok")
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
