#!/usr/bin/python3
"""Legacy cosign keyless signatures whose trust root the test controls, for
test_keyless_proxy.sh. Independent of Portcullis (Debian's python3-cryptography):
written from RFC 6962 (SCTs), the Fulcio certificate profile, Rekor's offline
bundle (SET) and the Sigstore trusted_root.json format, as
verifier/legacy_keyless_test_util.h builds the same objects for the unit tests.

  keyless_fixture.py world DIR
      DIR/{root,inter}.{key,pem}  a "Fulcio": self-signed root -> intermediate CA
      DIR/{rekor,ct}.key          a "Rekor" log key and a CT log key (ECDSA P-256)
      DIR/trusted_root.json       a Sigstore trusted root trusting exactly these
  keyless_fixture.py sig CA_DIR LOG_DIR EMAIL ISSUER PAYLOAD_FILE OUT_DIR
      a fresh leaf (email SAN EMAIL, OIDC issuer ISSUER in 1.3.6.1.4.1.57264.1.8,
      code signing, an SCT by LOG_DIR's CT log embedded) issued by CA_DIR's
      intermediate; the payload signed with it (ECDSA P-256, SHA-256, DER) and
      logged by LOG_DIR's Rekor key (hashedrekord 0.0.1 body, SET over the
      canonical JSON of {body, integratedTime, logID, logIndex}).
      OUT_DIR/annotations.json: the layer annotations cosign writes:
      dev.cosignproject.cosign/signature, dev.sigstore.cosign/certificate,
      dev.sigstore.cosign/chain, dev.sigstore.cosign/bundle.
  keyless_fixture.py bundle CA_DIR LOG_DIR EMAIL ISSUER DIGEST OUT_DIR [VARIANT]
      what cosign v3's `cosign sign` stores for the image DIGEST (sha256:<hex>):
      a Sigstore bundle v0.3 (OUT_DIR/bundle.json) holding a DSSE envelope of an
      in-toto statement (predicateType https://sigstore.dev/cosign/sign/v1, the
      digest as its subject), signed by a fresh leaf of CA_DIR as above
      (verificationMaterial.certificate), logged by LOG_DIR's Rekor v1 key as a
      dsse 0.0.1 entry: the SET (inclusionPromise), an RFC 6962 inclusion proof
      (our leaf at index 1 of a 2-leaf tree) and a checkpoint (C2SP signed note,
      origin "rekor.test.example - 42") signed by the same key.
      VARIANT (attacks): "tamperproof" (the proof's sibling hash changed),
      "tamperset" (the SET signs another integratedTime), "expired" (the leaf
      expired before the integrated time), "attestation" (an in-toto statement of
      predicateType https://slsa.dev/provenance/v1 about the digest, not a
      signature of it), "" (none).
"""
import base64
import datetime
import hashlib
import json
import os
import struct
import sys
import time

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SCT_OID = x509.ObjectIdentifier("1.3.6.1.4.1.11129.2.4.2")
ISSUER_V2_OID = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8")


def b64(b):
    return base64.b64encode(b).decode()


def spki_der(key):
    return key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def write_key(path, key):
    with open(path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))


def read_key(path):
    with open(path, "rb") as f:
        return serialization.load_pem_private_key(f.read(), None)


def read_cert(path):
    with open(path, "rb") as f:
        return x509.load_pem_x509_certificate(f.read())


def pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM)


def ca_cert(cn, key, issuer_cert, issuer_key, now):
    b = (x509.CertificateBuilder()
         .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
         .issuer_name(issuer_cert.subject if issuer_cert else x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
         .public_key(key.public_key())
         .serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(days=1))
         .not_valid_after(now + datetime.timedelta(days=3650))
         .add_extension(x509.BasicConstraints(ca=True, path_length=None if issuer_cert is None else 0), critical=True)
         .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
         .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))
    if issuer_cert is not None:
        b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
                            critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def world(d):
    os.makedirs(d, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    root_key, inter_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    root = ca_cert("test fulcio root", root_key, None, root_key, now)
    inter = ca_cert("test fulcio intermediate", inter_key, root, root_key, now)
    rekor, ct = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    for name, k in (("root", root_key), ("inter", inter_key), ("rekor", rekor), ("ct", ct)):
        write_key(os.path.join(d, name + ".key"), k)
    for name, c in (("root", root), ("inter", inter)):
        with open(os.path.join(d, name + ".pem"), "wb") as f:
            f.write(pem(c))

    def log(k, url):
        der = spki_der(k)
        return {"baseUrl": url, "hashAlgorithm": "SHA2_256",
                "publicKey": {"rawBytes": b64(der), "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                              "validFor": {"start": "2020-01-01T00:00:00Z"}},
                "logId": {"keyId": b64(hashlib.sha256(der).digest())}}
    root_json = {
        "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
        "tlogs": [log(rekor, "https://rekor.test.example")],
        "ctlogs": [log(ct, "https://ct.test.example")],
        "certificateAuthorities": [{
            "uri": "https://fulcio.test.example",
            "certChain": {"certificates": [{"rawBytes": b64(c.public_bytes(serialization.Encoding.DER))}
                                           for c in (inter, root)]},
            "validFor": {"start": "2020-01-01T00:00:00Z"}}],
    }
    with open(os.path.join(d, "trusted_root.json"), "w") as f:
        json.dump(root_json, f, indent=1)


def sct_extension(tbs_precert, issuer_cert, ct_key, ts_ms):
    """RFC 6962 §3.2-3.3: one v1 precert SCT by ct_key over tbs_precert, as the extension's value."""
    issuer_key_hash = hashlib.sha256(issuer_cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).digest()
    signed = (struct.pack(">BBQH", 0, 0, ts_ms, 1) + issuer_key_hash +
              struct.pack(">I", len(tbs_precert))[1:] + tbs_precert + struct.pack(">H", 0))
    sig = ct_key.sign(signed, ec.ECDSA(hashes.SHA256()))
    log_id = hashlib.sha256(spki_der(ct_key)).digest()
    sct = (struct.pack(">B", 0) + log_id + struct.pack(">QH", ts_ms, 0) + struct.pack(">BBH", 4, 3, len(sig)) + sig)
    sct_list = struct.pack(">H", len(sct) + 2) + struct.pack(">H", len(sct)) + sct
    assert len(sct_list) < 128
    return bytes([0x04, len(sct_list)]) + sct_list  # DER OCTET STRING around the TLS list


def utf8_der(s):
    b = s.encode()
    assert len(b) < 128
    return bytes([0x0c, len(b)]) + b


def make_leaf(ca_dir, log_dir, email, issuer, now, valid=(-60, 600)):
    """A Fulcio-style leaf of CA_DIR's intermediate with an SCT by LOG_DIR's CT key, valid
    from now+valid[0] to now+valid[1] seconds. Returns (leaf key, leaf, intermediate, root)."""
    inter_key, inter = read_key(os.path.join(ca_dir, "inter.key")), read_cert(os.path.join(ca_dir, "inter.pem"))
    root = read_cert(os.path.join(ca_dir, "root.pem"))
    ct = read_key(os.path.join(log_dir, "ct.key"))
    nowdt = datetime.datetime.fromtimestamp(now, datetime.timezone.utc)
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    serial = x509.random_serial_number()

    def builder():
        return (x509.CertificateBuilder()
                .subject_name(x509.Name([]))
                .issuer_name(inter.subject)
                .public_key(leaf_key.public_key())
                .serial_number(serial)
                .not_valid_before(nowdt + datetime.timedelta(seconds=valid[0]))
                .not_valid_after(nowdt + datetime.timedelta(seconds=valid[1]))
                .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False),
                               critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(inter_key.public_key()),
                               critical=False)
                .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(email)]), critical=True)
                .add_extension(x509.UnrecognizedExtension(ISSUER_V2_OID, utf8_der(issuer)), critical=False))
    precert = builder().sign(inter_key, hashes.SHA256())
    tbs = precert.tbs_certificate_bytes
    sct_ms = (now + valid[0] + 1) * 1000  # a CT log logs the precertificate while it is valid
    leaf = builder().add_extension(
        x509.UnrecognizedExtension(SCT_OID, sct_extension(tbs, inter, ct, sct_ms)), critical=False
    ).sign(inter_key, hashes.SHA256())
    assert leaf.tbs_precertificate_bytes == tbs, "the SCT must cover the final certificate's TBS"
    return leaf_key, leaf, inter, root


def sig(ca_dir, log_dir, email, issuer, payload_file, out):
    os.makedirs(out, exist_ok=True)
    rekor = read_key(os.path.join(log_dir, "rekor.key"))
    now = int(time.time()) - 5
    leaf_key, leaf, inter, root = make_leaf(ca_dir, log_dir, email, issuer, now)

    with open(payload_file, "rb") as f:
        payload = f.read()
    signature = leaf_key.sign(payload, ec.ECDSA(hashes.SHA256()))
    body = json.dumps({"apiVersion": "0.0.1", "kind": "hashedrekord", "spec": {
        "data": {"hash": {"algorithm": "sha256", "value": hashlib.sha256(payload).hexdigest()}},
        "signature": {"content": b64(signature), "publicKey": {"content": b64(pem(leaf))}}}},
        separators=(",", ":"), sort_keys=True)
    entry = {"body": b64(body.encode()), "integratedTime": now,
             "logID": hashlib.sha256(spki_der(rekor)).hexdigest(), "logIndex": 42}
    canonical = json.dumps(entry, separators=(",", ":"), sort_keys=True).encode()
    set_sig = rekor.sign(canonical, ec.ECDSA(hashes.SHA256()))
    annotations = {
        "dev.cosignproject.cosign/signature": b64(signature),
        "dev.sigstore.cosign/certificate": pem(leaf).decode(),
        "dev.sigstore.cosign/chain": (pem(inter) + pem(root)).decode(),
        "dev.sigstore.cosign/bundle": json.dumps({"SignedEntryTimestamp": b64(set_sig), "Payload": entry},
                                                 separators=(",", ":")),
    }
    with open(os.path.join(out, "annotations.json"), "w") as f:
        json.dump(annotations, f)


COSIGN_SIGN_PREDICATE = "https://sigstore.dev/cosign/sign/v1"
INTOTO = "application/vnd.in-toto+json"
LOG_HOST = "rekor.test.example"  # the trusted root's tlogs[0].baseUrl host: the checkpoint origin


def pae(payload_type, payload):
    """DSSE pre-authentication encoding."""
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def bundle(ca_dir, log_dir, email, issuer, digest, out, variant=""):
    assert variant in ("", "tamperproof", "tamperset", "expired", "attestation"), variant
    assert digest.startswith("sha256:") and len(digest) == 71, digest
    os.makedirs(out, exist_ok=True)
    rekor = read_key(os.path.join(log_dir, "rekor.key"))
    now = int(time.time()) - 5
    valid = (-3600, -1800) if variant == "expired" else (-60, 600)
    leaf_key, leaf, _, _ = make_leaf(ca_dir, log_dir, email, issuer, now, valid)

    statement = json.dumps({"_type": "https://in-toto.io/Statement/v1",
                            "subject": [{"name": "", "digest": {"sha256": digest[7:]}}],
                            "predicateType": "https://slsa.dev/provenance/v1" if variant == "attestation"
                            else COSIGN_SIGN_PREDICATE, "predicate": {}},
                           separators=(",", ":")).encode()
    signature = leaf_key.sign(pae(INTOTO, statement), ec.ECDSA(hashes.SHA256()))
    # Rekor v1 dsse 0.0.1 entry body (canonical JSON, as Rekor stores it)
    body = json.dumps({"apiVersion": "0.0.1", "kind": "dsse", "spec": {
        "payloadHash": {"algorithm": "sha256", "value": hashlib.sha256(statement).hexdigest()},
        "signatures": [{"signature": b64(signature), "verifier": b64(pem(leaf))}]}},
        separators=(",", ":"), sort_keys=True).encode()
    log_id = hashlib.sha256(spki_der(rekor)).digest()
    log_index = 42
    set_time = now + 1 if variant == "tamperset" else now
    promise = json.dumps({"body": b64(body), "integratedTime": set_time, "logID": log_id.hex(),
                          "logIndex": log_index}, separators=(",", ":"), sort_keys=True).encode()
    set_sig = rekor.sign(promise, ec.ECDSA(hashes.SHA256()))
    # RFC 6962 tree of two leaves: another entry at 0, ours at 1
    leaf0 = hashlib.sha256(b"\x00another entry").digest()
    leaf1 = hashlib.sha256(b"\x00" + body).digest()
    root_hash = hashlib.sha256(b"\x01" + leaf0 + leaf1).digest()
    note = ("%s - 42\n2\n%s\n" % (LOG_HOST, b64(root_hash))).encode()
    note_sig = rekor.sign(note, ec.ECDSA(hashes.SHA256()))
    checkpoint = note.decode() + "\n\u2014 %s %s\n" % (LOG_HOST, b64(log_id[:4] + note_sig))
    sibling = leaf0
    if variant == "tamperproof":
        sibling = bytes([leaf0[0] ^ 1]) + leaf0[1:]
    b = {
        "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "verificationMaterial": {
            "certificate": {"rawBytes": b64(leaf.public_bytes(serialization.Encoding.DER))},
            "tlogEntries": [{
                "logIndex": str(log_index),
                "logId": {"keyId": b64(log_id)},
                "kindVersion": {"kind": "dsse", "version": "0.0.1"},
                "integratedTime": str(now),
                "inclusionPromise": {"signedEntryTimestamp": b64(set_sig)},
                "inclusionProof": {"logIndex": "1", "rootHash": b64(root_hash), "treeSize": "2",
                                   "hashes": [b64(sibling)], "checkpoint": {"envelope": checkpoint}},
                "canonicalizedBody": b64(body)}]},
        "dsseEnvelope": {"payload": b64(statement), "payloadType": INTOTO,
                         "signatures": [{"sig": b64(signature), "keyid": ""}]},
    }
    with open(os.path.join(out, "bundle.json"), "w") as f:
        json.dump(b, f, separators=(",", ":"))


def main(argv):
    if len(argv) == 3 and argv[1] == "world":
        world(argv[2])
    elif len(argv) == 8 and argv[1] == "sig":
        sig(*argv[2:])
    elif len(argv) in (8, 9) and argv[1] == "bundle":
        bundle(*argv[2:])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
