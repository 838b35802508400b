#!/usr/bin/env bash
# Cosign key-format interop: Portcullis against an independent Python implementation
# of formats.md §4 (cosign_vectors.py) and against the openssl CLI.
# Usage: run_interop.sh PATH/TO/portcullis
# Prints one line per check and "N passed, N failed" last; exits non-zero on any failure.
set -uo pipefail

if [[ $# -ne 1 ]]; then
  echo "usage: $0 PATH/TO/portcullis" >&2
  exit 2
fi
BIN=$(realpath -e -- "$1") || { echo "run_interop.sh: no portcullis binary at $1" >&2; exit 2; }
HERE=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
PY=/usr/bin/python3
VECTORS="$HERE/cosign_vectors.py"
if ! "$PY" -c 'import nacl, cryptography' 2>/dev/null; then
  echo "run_interop.sh: $PY lacks python3-nacl / python3-cryptography" >&2
  exit 2
fi
command -v openssl >/dev/null || { echo "run_interop.sh: openssl not found" >&2; exit 2; }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/portcullis-interop.XXXXXX")
trap 'rm -rf -- "$TMP"' EXIT
cd "$TMP"

# Only the variables below choose the passphrase; never an inherited one.
unset COSIGN_PASSWORD
export PORTCULLIS_PASSWORD="interop pass phrase"
export PYTHONDONTWRITEBYTECODE=1

passed=0
failed=0
ok() { passed=$((passed + 1)); echo "PASS $*"; }
bad() { failed=$((failed + 1)); echo "FAIL $*"; }
# check DESCRIPTION COMMAND...: passes when COMMAND exits 0; shows its output on failure.
check() {
  local what=$1; shift
  if out=$("$@" 2>&1); then ok "$what"; else bad "$what"; sed 's/^/     | /' <<<"$out"; fi
}
# check_exit CODE DESCRIPTION COMMAND...: passes when COMMAND exits with CODE.
check_exit() {
  local want=$1 what=$2; shift 2
  local rc=0
  out=$("$@" 2>&1) || rc=$?
  if [[ $rc -eq $want ]]; then ok "$what"; else bad "$what (exit $rc, want $want)"; sed 's/^/     | /' <<<"$out"; fi
}

# --- Python-made cosign keys, read by Portcullis ---------------------------------------
mkdir py
check "python make writes a cosign P-256 key, public key, payload and signature" "$PY" "$VECTORS" make py
check "portcullis key public on the python key prints the same public key" \
  bash -c '"$0" key public py/py.key > py/py.from-portcullis.pub && cmp py/py.pub py/py.from-portcullis.pub' "$BIN"
check "portcullis key public reads the older ENCRYPTED COSIGN PRIVATE KEY (N=32768)" \
  bash -c '"$0" key public py/py-legacy.key | cmp - py/py.pub' "$BIN"
check_exit 0 "portcullis key verify-blob accepts the python signature" \
  "$BIN" key verify-blob py/py.pub --payload py/payload.json --signature py/py.sig
printf 'tampered' >> py/other-payload.json
check_exit 1 "portcullis key verify-blob refuses the python signature over another payload" \
  "$BIN" key verify-blob py/py.pub --payload py/other-payload.json --signature py/py.sig
check_exit 2 "a wrong passphrase is refused (exit 2)" \
  env PORTCULLIS_PASSWORD=wrong "$BIN" key public py/py.key
if out=$(env PORTCULLIS_PASSWORD=wrong "$BIN" key public py/py.key 2>&1); then :; fi
if grep -q "wrong passphrase or corrupted key: decryption failed" <<<"$out"; then
  ok "the wrong-passphrase error says so"
else
  bad "the wrong-passphrase error says so"; sed 's/^/     | /' <<<"$out"
fi
check "portcullis signs with the python key; openssl verifies (ECDSA SHA-256)" \
  bash -c '"$0" key sign-blob py/py.key --payload py/payload.json | base64 -d > py/pc.sig.der &&
           openssl dgst -sha256 -verify py/py.pub -signature py/pc.sig.der py/payload.json' "$BIN"

# --- Portcullis-made keys, read by Python and openssl ----------------------------------
mkdir pc
cp py/payload.json pc/payload.json 2>/dev/null
check "portcullis key generate (default type) writes pc-p256.key and pc-p256.pub" \
  "$BIN" key generate --output-prefix pc/pc-p256
check "portcullis key generate --type ed25519" \
  "$BIN" key generate --output-prefix pc/pc-ed25519 --type ed25519
mode=$(stat -c %a pc/pc-p256.key 2>/dev/null)
if [[ $mode == 600 ]]; then ok "private key file mode is 0600"; else bad "private key file mode is 0600 (got $mode)"; fi
cp pc/pc-p256.key pc/pc-p256.key.orig
check_exit 2 "generate refuses to overwrite without --force" \
  "$BIN" key generate --output-prefix pc/pc-p256
check "the refused generate left the key untouched" cmp pc/pc-p256.key pc/pc-p256.key.orig
rm -f pc/pc-p256.key.orig
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out openssl-ec.pem 2>/dev/null
check "portcullis key import wraps an openssl PKCS#8 key" \
  "$BIN" key import openssl-ec.pem --output-prefix pc/pc-imported
check "the imported key's .pub matches openssl's public key" \
  bash -c 'openssl pkey -in openssl-ec.pem -pubout | cmp - pc/pc-imported.pub'
for name in pc-p256 pc-ed25519 pc-imported; do
  check "portcullis key sign-blob with $name" \
    bash -c '"$0" key sign-blob "pc/$1.key" --payload pc/payload.json > "pc/$1.sig"' "$BIN" "$name"
  check_exit 0 "portcullis key verify-blob with $name" \
    "$BIN" key verify-blob "pc/$name.pub" --payload pc/payload.json --signature "pc/$name.sig"
done
check "python check: layout, decryption, public keys and signatures of pc-*.key" "$PY" "$VECTORS" check pc
for name in pc-p256 pc-imported; do
  base64 -d "pc/$name.sig" > "pc/$name.sig.der" 2>/dev/null
  check "openssl dgst -sha256 -verify $name.pub over the portcullis signature" \
    openssl dgst -sha256 -verify "pc/$name.pub" -signature "pc/$name.sig.der" pc/payload.json
done
base64 -d pc/pc-ed25519.sig > pc/pc-ed25519.sig.bin 2>/dev/null
check "openssl pkeyutl verifies the Ed25519 signature" \
  openssl pkeyutl -verify -pubin -inkey pc/pc-ed25519.pub -rawin -in pc/payload.json -sigfile pc/pc-ed25519.sig.bin

# --- The checker itself must catch a bad signature and a wrong passphrase --------------
mkdir neg
cp pc/payload.json pc/pc-p256.key pc/pc-p256.pub neg/ 2>/dev/null
mv neg/pc-p256.key neg/pc-bad.key 2>/dev/null
mv neg/pc-p256.pub neg/pc-bad.pub 2>/dev/null
printf 'other' > neg/other
"$BIN" key sign-blob neg/pc-bad.key --payload neg/other > neg/pc-bad.sig 2>/dev/null
check_exit 1 "python check rejects a signature over another payload" "$PY" "$VECTORS" check neg
check_exit 1 "python check rejects a key under another passphrase" \
  env PORTCULLIS_PASSWORD=wrong "$PY" "$VECTORS" check pc
# openssl must reject the wrong-payload signature too.
base64 -d neg/pc-bad.sig > neg/pc-bad.sig.der 2>/dev/null
check_exit 1 "openssl rejects a signature over another payload" \
  openssl dgst -sha256 -verify neg/pc-bad.pub -signature neg/pc-bad.sig.der neg/payload.json

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
