#!/usr/bin/env python3
"""Writes seed inputs for one fuzz target, taken from the string literals of the
unit tests beside the parser it fuzzes (raw strings R"(...)" and plain "..."
strings), into a corpus folder. tests/fuzz/run.sh runs it into a temporary copy
of the corpus, so the repository is never changed.

Usage: extract_seeds.py TARGET OUT_DIR   (prints how many seeds it wrote)
"""
import ast
import glob
import hashlib
import os
import re
import sys

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")

# target -> (test files, keep(literal) predicate, prefixes: selector bytes put in
# front of each seed for harnesses whose first byte picks a mode)
TARGETS = {
    "fuzz_reference": (["oci/reference_test.cc", "oci/digest_test.cc", "verifier/glob_test.cc"],
                       lambda s: 0 < len(s) < 512, [b""]),
    "fuzz_manifest": (["oci/manifest_test.cc", "verifier/discovery_test.cc", "proxy/*_test.cc"],
                      lambda s: "{" in s, [b"\x00", b"\x01", b"\x02"]),
    "fuzz_challenge": (["oci/http_client_test.cc", "signer/signer_test.cc"],
                       lambda s: "realm" in s or "://" in s, [b""]),
    "fuzz_config": (["config/config_test.cc", "config/examples/*.json"], lambda s: "{" in s, [b""]),
    "fuzz_policy": (["verifier/policy_test.cc", "verifier/containers_policy_test.cc"],
                    lambda s: "{" in s, [b""]),
    "fuzz_simple_signing": (["verifier/verifier_test.cc", "verifier/policy_test_util.h"],
                            lambda s: "{" in s, [b""]),
    "fuzz_sig_manifest": (["signer/signer_test.cc"], lambda s: "{" in s, [b""]),
    "fuzz_key_pem": (["keys/keys_test.cc"], lambda s: "-----" in s or "{" in s, [b""]),
    "fuzz_public_key": (["keys/keys_test.cc"], lambda s: "-----" in s, [b""]),
    "fuzz_error_body": (["verifier/*_test.cc", "oci/*_test.cc"], lambda s: "errors" in s, [b"\x00", b"\x03"]),
    "fuzz_token_reply": (["oci/http_client_test.cc"], lambda s: "token" in s and "{" in s, [b""]),
    # verifier/sigstore lands with the sigstore branch; until then these find nothing.
    "fuzz_sigstore_bundle": (["verifier/sigstore/*_test.cc", "tests/vectors/sigstore/**/*bundle*.json"],
                             lambda s: "{" in s, [b""]),
    "fuzz_trusted_root": (["verifier/sigstore/*.json", "tests/vectors/sigstore/**/trusted_root.json"],
                          lambda s: "{" in s, [b""]),
    "fuzz_range": (["proxy/server_test.cc"], lambda s: s.startswith("bytes"), [b""]),
}

RAW = re.compile(r'R"([^()\\\s]{0,16})\((.*?)\)\1"', re.S)
PLAIN = re.compile(r'"((?:[^"\\\n]|\\.)*)"')


def literals(text):
    for m in RAW.finditer(text):
        yield m.group(2)
    text = RAW.sub("", text)
    for m in PLAIN.finditer(text):
        try:
            yield ast.literal_eval('"' + m.group(1) + '"')
        except (ValueError, SyntaxError):
            continue


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    target, out = sys.argv[1], sys.argv[2]
    if target not in TARGETS:
        print(0)
        return
    patterns, keep, prefixes = TARGETS[target]
    os.makedirs(out, exist_ok=True)
    n = 0
    for pattern in patterns:
        for path in sorted(glob.glob(os.path.join(SRC, pattern), recursive=True)):
            with open(path, encoding="utf-8", errors="replace") as f:
                text = f.read()
            items = [text] if path.endswith(".json") else literals(text)
            for s in items:
                if not keep(s):
                    continue
                for p in prefixes:
                    data = p + s.encode("utf-8", "surrogateescape")
                    name = "seed-" + hashlib.sha1(data).hexdigest()[:16]
                    dest = os.path.join(out, name)
                    if not os.path.exists(dest):
                        with open(dest, "wb") as f:
                            f.write(data)
                        n += 1
    print(n)


if __name__ == "__main__":
    main()
