#!/usr/bin/env bash
# run-cases.sh PORTCULLIS_BINARY: every case under cases/, by file and by sha256 digest,
# through `portcullis verify-bundle` (cases without their own trusted_root.json use the
# public-good root built into the binary). Exit 0 only when every run gives the expected
# result: 0 for a case that must verify; for a case named *_fail, 1 (refused) or 2 (an
# input Portcullis will not use at all: an unparsable key file or trusted root).
set -uo pipefail
PC=${1:?usage: run-cases.sh PORTCULLIS_BINARY}
CASES=$(cd "$(dirname "$0")" && pwd)/cases
DEFAULT_ID=https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main
DEFAULT_ISSUER=https://token.actions.githubusercontent.com
pass=0 fail=0
for d in "$CASES"/*/; do
  c=$(basename "$d"); [[ -f $d/bundle.sigstore.json ]] || continue
  art=$d/artifact; [[ -f $art ]] || art=$CASES/a.txt
  root=(); [[ -f $d/trusted_root.json ]] && root=(--trusted-root "$d/trusted_root.json")
  if [[ -f $d/key.pub ]]; then who=(--key "$d/key.pub")
  else
    id=$DEFAULT_ID iss=$DEFAULT_ISSUER
    [[ -f $d/identity ]] && id=$(cat "$d/identity"); [[ -f $d/issuer ]] && iss=$(cat "$d/issuer")
    who=(--certificate-identity "$id" --certificate-oidc-issuer "$iss")
  fi
  for form in file digest; do
    target=$art; [[ $form == digest ]] && target=sha256:$(sha256sum "$art" | cut -d' ' -f1)
    err=$(timeout 30 "$PC" verify-bundle --bundle "$d/bundle.sigstore.json" "${who[@]}" "${root[@]}" "$target" 2>&1 >/dev/null)
    rc=$?
    if [[ $c == *_fail ]]; then want="1 or 2"; ok=$(( rc == 1 || rc == 2 )); else want=0; ok=$(( rc == 0 )); fi
    if (( ok )); then pass=$((pass+1)); echo "ok   - $c ($form): exit $rc ${err:+($err)}"
    else fail=$((fail+1)); echo "FAIL - $c ($form): want exit $want, got $rc ${err:+($err)}"; fi
  done
done
echo "$pass passed, $fail failed"
[[ $fail == 0 && $pass -gt 0 ]]
