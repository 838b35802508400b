#!/usr/bin/python3
"""Cosign key-format vectors, written from formats.md §2/§4 independently of the C++ code.

Run with Debian's /usr/bin/python3 (python3-cryptography, python3-nacl).

  cosign_vectors.py make DIR    write, with the passphrase from $PORTCULLIS_PASSWORD:
      DIR/py.key          ENCRYPTED SIGSTORE PRIVATE KEY, P-256, scrypt N=65536 r=8 p=1
      DIR/py-legacy.key   the same key as ENCRYPTED COSIGN PRIVATE KEY, N=32768
      DIR/py.pub          its PUBLIC KEY PEM
      DIR/payload.json    a cosign simple-signing payload
      DIR/py.sig          base64 ECDSA-SHA256 ASN.1 DER signature over payload.json

  cosign_vectors.py check DIR   for every DIR/pc-<name>.key (written by Portcullis):
      check the PEM and JSON layout cosign writes, decrypt it with $PORTCULLIS_PASSWORD,
      check that DIR/pc-<name>.pub is its public key (byte for byte as cosign would
      write it), and verify DIR/pc-<name>.sig (base64) over DIR/payload.json.

Exit status 0 when every check passed, 1 otherwise; one line per check.
"""
import base64
import hashlib
import json
import os
import sys

import nacl.secret
import nacl.utils
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

SIGSTORE_TYPE = "ENCRYPTED SIGSTORE PRIVATE KEY"
COSIGN_TYPE = "ENCRYPTED COSIGN PRIVATE KEY"
ACCEPTED_N = (32768, 65536, 131072)
PAYLOAD = (b'{"critical":{"identity":{"docker-reference":"reg.example/ns/app"},'
           b'"image":{"docker-manifest-digest":"sha256:'
           + b"0123456789abcdef" * 4
           + b'"},"type":"cosign container image signature"},"optional":null}')


def passphrase():
    p = os.environ.get("PORTCULLIS_PASSWORD")
    if p is None:
        sys.exit("cosign_vectors.py: set PORTCULLIS_PASSWORD")
    return p.encode()


def scrypt(password, salt, n, r, p):
    return hashlib.scrypt(password, salt=salt, n=n, r=r, p=p, maxmem=2**28, dklen=32)


def pem_encode(pem_type, body):
    b64 = base64.b64encode(body).decode()
    lines = [b64[i:i + 64] for i in range(0, len(b64), 64)]
    return ("-----BEGIN %s-----\n%s\n-----END %s-----\n" % (pem_type, "\n".join(lines), pem_type)).encode()


def pem_decode(data):
    text = data.decode()
    lines = text.split("\n")
    if not lines[0].startswith("-----BEGIN ") or not lines[0].endswith("-----"):
        raise ValueError("no BEGIN line")
    pem_type = lines[0][len("-----BEGIN "):-5]
    end = "-----END %s-----" % pem_type
    if end not in lines:
        raise ValueError("no END line")
    body_lines = lines[1:lines.index(end)]
    return pem_type, body_lines, base64.b64decode("".join(body_lines), validate=True)


def encrypt(plaintext, password, n):
    """The go-tuf 'encrypted' JSON, field order as Go's json.Marshal writes it."""
    salt = nacl.utils.random(32)
    nonce = nacl.utils.random(nacl.secret.SecretBox.NONCE_SIZE)
    key = scrypt(password, salt, n, 8, 1)
    sealed = nacl.secret.SecretBox(key).encrypt(plaintext, nonce).ciphertext  # tag || ciphertext
    doc = {
        "kdf": {"name": "scrypt", "params": {"N": n, "r": 8, "p": 1},
                "salt": base64.b64encode(salt).decode()},
        "cipher": {"name": "nacl/secretbox", "nonce": base64.b64encode(nonce).decode()},
        "ciphertext": base64.b64encode(sealed).decode(),
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def public_pem(key):
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


def cmd_make(d):
    os.makedirs(d, exist_ok=True)
    password = passphrase()
    key = ec.generate_private_key(ec.SECP256R1())
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    files = {
        "py.key": pem_encode(SIGSTORE_TYPE, encrypt(der, password, 65536)),
        "py-legacy.key": pem_encode(COSIGN_TYPE, encrypt(der, password, 32768)),
        "py.pub": public_pem(key),
        "payload.json": PAYLOAD,
        "py.sig": base64.b64encode(key.sign(PAYLOAD, ec.ECDSA(hashes.SHA256()))),
    }
    for name, data in files.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
    os.chmod(os.path.join(d, "py.key"), 0o600)
    os.chmod(os.path.join(d, "py-legacy.key"), 0o600)
    print("wrote " + " ".join(sorted(files)) + " in " + d)
    return 0


class Checker:
    def __init__(self):
        self.failed = 0

    def check(self, cond, what):
        print(("ok   " if cond else "FAIL ") + what)
        if not cond:
            self.failed += 1
        return cond


def check_one(c, d, name, password, payload):
    path = os.path.join(d, name + ".key")
    raw = open(path, "rb").read()
    try:
        pem_type, body_lines, body = pem_decode(raw)
    except ValueError as e:
        c.check(False, "%s: PEM: %s" % (name, e))
        return
    c.check(pem_type == SIGSTORE_TYPE, "%s: PEM type is %s" % (name, SIGSTORE_TYPE))
    c.check(all(len(l) == 64 for l in body_lines[:-1]) and 0 < len(body_lines[-1]) <= 64,
            "%s: PEM body in 64-character lines" % name)
    c.check(raw.endswith(b"-----\n") and raw.count(b"-----BEGIN") == 1, "%s: single block, trailing newline" % name)
    try:
        doc = json.loads(body)
    except ValueError:
        c.check(False, "%s: PEM body is JSON" % name)
        return
    c.check(json.dumps(doc, separators=(",", ":")).encode() == body,
            "%s: JSON compact, fields in Go order" % name)
    c.check(list(doc) == ["kdf", "cipher", "ciphertext"]
            and list(doc["kdf"]) == ["name", "params", "salt"]
            and list(doc["kdf"]["params"]) == ["N", "r", "p"]
            and list(doc["cipher"]) == ["name", "nonce"], "%s: JSON field names" % name)
    kdf, cipher = doc["kdf"], doc["cipher"]
    params = kdf["params"]
    c.check(kdf["name"] == "scrypt" and cipher["name"] == "nacl/secretbox", "%s: scrypt + nacl/secretbox" % name)
    c.check((params["N"], params["r"], params["p"]) == (65536, 8, 1), "%s: scrypt N=65536 r=8 p=1" % name)
    salt = base64.b64decode(kdf["salt"], validate=True)
    nonce = base64.b64decode(cipher["nonce"], validate=True)
    c.check(len(salt) == 32, "%s: salt is 32 bytes" % name)
    c.check(len(nonce) == 24, "%s: nonce is 24 bytes" % name)
    key = scrypt(password, salt, params["N"], params["r"], params["p"])
    try:
        der = nacl.secret.SecretBox(key).decrypt(base64.b64decode(doc["ciphertext"], validate=True), nonce)
    except Exception as e:  # nacl.exceptions.CryptoError
        c.check(False, "%s: decrypts with PORTCULLIS_PASSWORD (%s)" % (name, e))
        return
    c.check(True, "%s: decrypts with PORTCULLIS_PASSWORD" % name)
    try:
        priv = serialization.load_der_private_key(der, password=None)
    except ValueError as e:
        c.check(False, "%s: plaintext is PKCS#8 DER (%s)" % (name, e))
        return
    reencoded = priv.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption())
    c.check(isinstance(priv, (ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey, rsa.RSAPrivateKey)),
            "%s: plaintext is a PKCS#8 %s key" % (name, type(priv).__name__.lstrip("_")))
    c.check(reencoded == der, "%s: PKCS#8 DER is canonical" % name)
    pub_path = os.path.join(d, name + ".pub")
    pub_raw = open(pub_path, "rb").read()
    c.check(pub_raw == public_pem(priv), "%s: .pub is the key's PUBLIC KEY PEM byte for byte" % name)
    pub = serialization.load_pem_public_key(pub_raw)
    sig = base64.b64decode(open(os.path.join(d, name + ".sig"), "rb").read().strip(), validate=True)
    c.check(verifies(pub, sig, payload), "%s: signature over payload.json verifies" % name)
    c.check(not verifies(pub, sig, payload + b"x"), "%s: signature does not verify over another payload" % name)


def verifies(pub, sig, payload):
    """cosign's scheme per key type: ECDSA P-256/SHA-256, P-384/SHA-384, pure Ed25519, RSA PKCS#1 v1.5/SHA-256."""
    try:
        if isinstance(pub, ec.EllipticCurvePublicKey):
            algo = hashes.SHA384() if pub.curve.name == "secp384r1" else hashes.SHA256()
            pub.verify(sig, payload, ec.ECDSA(algo))
        elif isinstance(pub, ed25519.Ed25519PublicKey):
            pub.verify(sig, payload)
        else:
            pub.verify(sig, payload, padding.PKCS1v15(), hashes.SHA256())
        return True
    except InvalidSignature:
        return False


def cmd_check(d):
    password = passphrase()
    payload = open(os.path.join(d, "payload.json"), "rb").read()
    names = sorted(f[:-4] for f in os.listdir(d) if f.startswith("pc-") and f.endswith(".key"))
    c = Checker()
    c.check(bool(names), "found Portcullis keys (pc-*.key) in " + d)
    for name in names:
        check_one(c, d, name, password, payload)
    return 1 if c.failed else 0


def main(argv):
    if len(argv) != 3 or argv[1] not in ("make", "check"):
        sys.stderr.write("usage: cosign_vectors.py make|check DIR\n")
        return 2
    return cmd_make(argv[2]) if argv[1] == "make" else cmd_check(argv[2])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
