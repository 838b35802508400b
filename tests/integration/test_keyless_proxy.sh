#!/usr/bin/env bash
# Legacy cosign keyless .sig signatures (certificate, chain and Rekor bundle annotations)
# through the proxy gate, end to end, with a trust root the test controls:
#   keyless_fixture.py (python3-cryptography, independent of Portcullis) makes a "Fulcio"
#   (root -> intermediate), a "Rekor" key and a CT log key, a trusted_root.json trusting
#   them, and a foreign CA; it signs the image's cosign payload with a fresh leaf
#   (email SAN, OIDC issuer extension, embedded SCT) and logs it (SET). curl pushes the
#   .sig image to a docker-registry upstream on 127.0.0.1.
#   1. a Portcullis policy whose trusted_root is that file, rules requiring keyless
#      identities: skopeo pulls the image signed by the required identity
#   2. refused, and the pull fails with the gate's 403 DENIED: a rule naming another
#      subject; another issuer; a certificate from a foreign CA (logged by the trusted
#      Rekor); a SET by a foreign Rekor key; the .sig of another image copied
#   3. portcullis verify --policy agrees, against the registry directly
#   4. containers-policy.json "fulcio" (caPath + rekorPublicKeyPath) through the gate:
#      the same signature pulls; another subjectEmail and the foreign CA are refused
#   5. podman through the first proxy: the keyless image pulls; another subject and the
#      foreign CA are refused
source "$(dirname "$0")/lib.sh"
suite_init keyless_proxy
need openssl jq curl

KF="$IT_DIR/keyless_fixture.py"
EMAIL=release@example.com
ISSUER=https://issuer.test.example

start_upstream upstream || { not_ok "upstream registry starts" "see $T/upstream.log"; finish; }
UP=${ADDR[upstream]}
build_images || { not_ok "test images built" "see $T/build_images.log"; finish; }
REPOS="keyless wrongsub wrongiss foreign forgedset copied"
for r in $REPOS; do
  check "skopeo pushes the small image to lab/$r:v1" \
    sk copy -q --dest-tls-verify=false "oci:$IMG_OCI:small" "docker://$UP/lab/$r:v1" || finish
done
D=$(manifest_digest "$UP" lab/keyless v1) || { not_ok "digest of lab/keyless:v1"; finish; }
# lab/copied holds another manifest (v2s2), signed below with a copy of lab/keyless's .sig
check "skopeo pushes the small image as v2s2 to lab/copied:v1" \
  sk copy -q --dest-tls-verify=false --format v2s2 "oci:$IMG_OCI:small" "docker://$UP/lab/copied:v1" || finish
DC=$(manifest_digest "$UP" lab/copied v1)
check_true "lab/copied:v1 is another manifest" "$DC" test "$DC" != "$D"

check "keyless_fixture.py makes the trusted world (Fulcio root + intermediate, Rekor, CT, trusted_root.json)" \
  "$PY" "$KF" world "$T/w" || finish
check "... and a foreign one" "$PY" "$KF" world "$T/f" || finish
"$PY" "$SPY" payload "$UP/lab/keyless" "$D" >"$T/payload.json"

# keyless_sig REPO CA_DIR LOG_DIR : a fresh leaf of CA_DIR signs the payload, LOG_DIR's Rekor logs
# it; curl uploads the .sig image (cosign's layout, keyless annotations) under REPO's .sig tag of D
keyless_sig() {
  local w=$T/sig-$1
  mkdir -p "$w"
  "$PY" "$KF" sig "$2" "$3" "$EMAIL" "$ISSUER" "$T/payload.json" "$w" &&
  "$PY" "$SPY" sigimage "$T/payload.json" "$(jq -r '."dev.cosignproject.cosign/signature"' "$w/annotations.json")" "$w" &&
  jq -c --slurpfile a "$w/annotations.json" '.layers[0].annotations = $a[0]' "$w/manifest.json" | tr -d '\n' \
    >"$w/keyless-manifest.json" &&
  curl_push_blob "$UP" "lab/$1" "$T/payload.json" && curl_push_blob "$UP" "lab/$1" "$w/config.json" &&
  put_manifest "$UP" "lab/$1" "sha256-${D#sha256:}.sig" "$w/keyless-manifest.json" \
    "application/vnd.oci.image.manifest.v1+json"
}
for r in keyless wrongsub wrongiss; do
  check "keyless .sig of lab/$r:v1 (trusted CA, trusted Rekor)" keyless_sig "$r" "$T/w" "$T/w"
done
check "keyless .sig of lab/foreign:v1 (foreign CA, trusted Rekor and CT)" keyless_sig foreign "$T/f" "$T/w"
# forged SET: the trusted CA, a foreign Rekor key (the trusted CT log signs the SCT... of the foreign world)
check "keyless .sig of lab/forgedset:v1 (trusted CA, foreign Rekor)" keyless_sig forgedset "$T/w" "$T/f"
check_true "... the layer carries certificate, chain, bundle and signature annotations" \
  "$(head -c 300 "$T/sig-keyless/keyless-manifest.json")" \
  jq -e '.layers[0].annotations | has("dev.sigstore.cosign/certificate") and has("dev.sigstore.cosign/chain")
         and has("dev.sigstore.cosign/bundle") and has("dev.cosignproject.cosign/signature")' \
  "$T/sig-keyless/keyless-manifest.json"
get_manifest "$UP" lab/keyless "sha256-${D#sha256:}.sig" "$T/keyless-sig.json" &&
  curl_push_blob "$UP" lab/copied "$T/payload.json" && curl_push_blob "$UP" lab/copied "$T/sig-keyless/config.json" &&
  check "the .sig of lab/keyless ($D) copied to the .sig tag of lab/copied:v1 ($DC)" \
    put_manifest "$UP" lab/copied "sha256-${DC#sha256:}.sig" "$T/keyless-sig.json" application/vnd.oci.image.manifest.v1+json

# ---------------------------------------------------------------- the policy
mkdir -p "$T/pol"
cp "$T/w/trusted_root.json" "$T/pol/trusted_root.json"
ident() { jq -cn --arg s "$1" --arg i "$2" '{issuer:$i, subject:$s}'; }
cat >"$T/pol/keyless.json" <<JSON
{"trusted_root":"trusted_root.json",
 "rules":[{"match":"**/lab/keyless","require":{"identities":[$(ident "$EMAIL" "$ISSUER")]}},
          {"match":"**/lab/wrongsub","require":{"identities":[$(ident mallory@example.com "$ISSUER")]}},
          {"match":"**/lab/wrongiss","require":{"identities":[$(ident "$EMAIL" https://accounts.other.example)]}},
          {"match":"**/lab/foreign","require":{"identities":[$(ident "$EMAIL" "$ISSUER")]}},
          {"match":"**/lab/forgedset","require":{"identities":[$(ident "$EMAIL" "$ISSUER")]}},
          {"match":"**/lab/copied","require":{"identities":[$(ident "$EMAIL" "$ISSUER")]}}],
 "default":"reject"}
JSON
check "policy check loads the keyless policy" pc policy check "$T/pol/keyless.json"

start_proxy pp --upstream "upstream.test=http://$UP" --policy "$T/pol/keyless.json" ||
  { not_ok "proxy (keyless policy) starts" "$(tail -3 "$T/pp.log")"; finish; }
ok "proxy (keyless policy) starts"
P=${ADDR[pp]}
mkdir -p "$T/pull"
decision() { policy_decision "$@"; }

# ---------------------------------------------------------------- 1. accepted
check "1. skopeo pulls upstream.test/lab/keyless:v1 through the gate (keyless .sig by $EMAIL)" \
  sk copy -q --src-tls-verify=false "docker://$P/upstream.test/lab/keyless:v1" "oci:$T/pull/ok:x"
check_true "... decision: accept by identity:$EMAIL" "$(decision pp upstream.test/lab/keyless:v1)" \
  jq -e --arg k "identity:$EMAIL" '.verdict == "accept" and .keys == [$k]' <<<"$(decision pp upstream.test/lab/keyless:v1)"
check_true "... the pulled image is the signed digest" "$(cat "$T/pull/ok/index.json" 2>/dev/null | head -c 300)" \
  jq -e --arg d "$D" '.manifests[0].digest == $d' "$T/pull/ok/index.json"

# ---------------------------------------------------------------- 2. refused
# refused REPO WHY : the pull fails with the gate's error; the decision and the 403 say WHY
refused() {
  local repo=$1 why=$2 code
  if sk copy -q --src-tls-verify=false "docker://$P/upstream.test/lab/$repo:v1" "oci:$T/pull/$repo:x" >"$T/cli.out" 2>&1; then
    not_ok "2. skopeo pull of upstream.test/lab/$repo:v1 refused" "the pull succeeded"
  else
    ok "2. skopeo pull of upstream.test/lab/$repo:v1 refused"
    check_true "... skopeo reports the gate's denial" "$(grep -v '^$' "$T/cli.out" | tail -1 | cut -c1-300)" \
      grep -qiE 'denied|403' "$T/cli.out"
  fi
  check_true "... decision: reject, because $why" "$(decision pp "upstream.test/lab/$repo:v1")" \
    jq -e --arg w "$why" '.verdict == "reject" and (.reason | contains($w))' <<<"$(decision pp "upstream.test/lab/$repo:v1")"
  code=$(curl -sS --max-time 60 -o "$T/body" -w '%{http_code}' -H "Accept: $ACCEPT_ALL" \
         "http://$P/v2/upstream.test/lab/$repo/manifests/v1")
  check_true "... GET manifest: 403 DENIED naming the reason" "HTTP $code $(head -c 300 "$T/body")" \
    jq -e --arg w "$why" '.errors[0].code == "DENIED" and (.errors[0].message | startswith("refused by the trust policy")) and
       (.errors[0].message | contains($w))' "$T/body"
}
refused wrongsub "certificate identity \"$EMAIL\" does not match \"mallory@example.com\""
refused wrongiss "certificate OIDC issuer \"$ISSUER\" does not match \"https://accounts.other.example\""
refused foreign "does not chain to a trusted Fulcio CA"
refused forgedset "Rekor bundle is from a log that is not in the trusted root"
refused copied "$D"

# ---------------------------------------------------------------- 3. verify --policy
expect3() {
  local want=$1 repo=$2 rc
  pc verify "$UP/lab/$repo:v1" --policy "$T/pol/keyless.json" --allow-http >"$T/out" 2>"$T/err"; rc=$?
  check_eq "3. verify --policy $UP/lab/$repo:v1 exits $want" "$want" "$rc"
}
expect3 0 keyless
check_true "... verified by identity:$EMAIL" "$(head -c 400 "$T/out")" \
  jq -e --arg k "identity:$EMAIL" '.allowed and .keys_matched == [$k]' "$T/out"
for r in wrongsub wrongiss foreign forgedset copied; do expect3 1 "$r"; done

# ---------------------------------------------------------------- 4. containers-policy.json fulcio
mkdir -p "$T/cp"
cp "$T/w/root.pem" "$T/cp/fulcio.pem"
openssl pkey -in "$T/w/rekor.key" -pubout -out "$T/cp/rekor.pub" 2>/dev/null
fulcio() {
  jq -cn --arg e "$1" --arg i "$ISSUER" '[{type:"sigstoreSigned", fulcio:{caPath:"fulcio.pem", oidcIssuer:$i, subjectEmail:$e},
    rekorPublicKeyPath:"rekor.pub", signedIdentity:{type:"matchRepository"}}]'
}
cat >"$T/cp/policy.json" <<JSON
{"default":[{"type":"reject"}],
 "transports":{"docker":{
   "upstream.test/lab/keyless":$(fulcio "$EMAIL"),
   "upstream.test/lab/wrongsub":$(fulcio mallory@example.com),
   "upstream.test/lab/foreign":$(fulcio "$EMAIL")}}}
JSON
# matchRepository compares the payload's docker-reference ($UP/lab/keyless) with the pulled name:
# the proxy serves upstream.test/lab/keyless, so re-sign lab/keyless's payload under that name.
"$PY" "$SPY" payload upstream.test/lab/keyless "$D" >"$T/payload.json"
check "keyless .sig of lab/keyless re-made for the identity upstream.test/lab/keyless" keyless_sig keyless "$T/w" "$T/w"
"$PY" "$SPY" payload upstream.test/lab/wrongsub "$D" >"$T/payload.json"
check "... of lab/wrongsub for upstream.test/lab/wrongsub" keyless_sig wrongsub "$T/w" "$T/w"
"$PY" "$SPY" payload upstream.test/lab/foreign "$D" >"$T/payload.json"
check "... of lab/foreign (foreign CA) for upstream.test/lab/foreign" keyless_sig foreign "$T/f" "$T/w"
start_proxy cp --upstream "upstream.test=http://$UP" --policy "$T/cp/policy.json" ||
  { not_ok "proxy (containers-policy fulcio) starts" "$(tail -3 "$T/cp.log")"; finish; }
ok "proxy (containers-policy fulcio) starts"
C=${ADDR[cp]}
check "4. skopeo pulls upstream.test/lab/keyless:v1 under sigstoreSigned fulcio" \
  sk copy -q --src-tls-verify=false "docker://$C/upstream.test/lab/keyless:v1" "oci:$T/pull/cp:x"
check_true "... decision: accept by fulcio $EMAIL" "$(decision cp upstream.test/lab/keyless:v1)" \
  jq -e --arg k "fulcio $EMAIL ($ISSUER)" '.verdict == "accept" and .keys == [$k]' <<<"$(decision cp upstream.test/lab/keyless:v1)"
for r in wrongsub foreign; do
  if sk copy -q --src-tls-verify=false "docker://$C/upstream.test/lab/$r:v1" "oci:$T/pull/cp-$r:x" >"$T/cli.out" 2>&1; then
    not_ok "4. skopeo pull of upstream.test/lab/$r:v1 under fulcio refused" "the pull succeeded"
  else
    ok "4. skopeo pull of upstream.test/lab/$r:v1 under fulcio refused"
  fi
  check_true "... decision: reject" "$(decision cp "upstream.test/lab/$r:v1")" \
    jq -e '.verdict == "reject"' <<<"$(decision cp "upstream.test/lab/$r:v1")"
done

# ---------------------------------------------------------------- 5. podman through the gate
# The first proxy (Portcullis policy, keyless rules): podman pulls the legacy keyless .sig image
# through a registries.conf mirror; another subject and a foreign CA are refused with the 403.
if command -v podman >/dev/null 2>&1; then
  podman_via_proxy "$P" upstream.test
  check "5. podman pull upstream.test/lab/keyless:v1 through the gate (legacy keyless .sig)" \
    "${PM[@]}" pull -q upstream.test/lab/keyless:v1
  got=$("${PM[@]}" image inspect --format '{{range .RepoDigests}}{{println .}}{{end}}' upstream.test/lab/keyless:v1 2>&1 | grep -v '^$')
  check_true "... podman has upstream.test/lab/keyless@$D" "have: $got" grep -qx "upstream.test/lab/keyless@$D" <<<"$got"
  for r in wrongsub foreign; do
    if "${PM[@]}" pull -q "upstream.test/lab/$r:v1" >"$T/cli.out" 2>&1; then
      not_ok "5. podman pull upstream.test/lab/$r:v1 refused" "the pull succeeded"
    else
      ok "5. podman pull upstream.test/lab/$r:v1 refused"
      check_true "... podman reports the gate's denial" "$(grep -v '^$' "$T/cli.out" | tail -1 | cut -c1-300)" \
        grep -qiE 'denied|403' "$T/cli.out"
    fi
  done
else
  not_ok "5. podman present" "podman is not installed"
fi

finish
