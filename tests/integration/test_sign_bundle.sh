#!/usr/bin/env bash
# portcullis sign --bundle against a real registry without the referrers API
# (distribution 2.8), then the bundle accepted by portcullis verify --policy and by
# the proxy gate under a key rule, pulled with skopeo:
#   1. sign --bundle writes a v0.3 bundle (message signature, public-key hint, no log
#      entry) as a referrer manifest (artifactType, empty config, subject = the image)
#      listed in the fallback index sha256-<hex>; no .sig tag; the signature checks
#      with openssl over the manifest bytes; a second key appends to the index
#   2. portcullis verify --policy: accepted with the signer's key, refused with another
#   3. the proxy gate (key rule): skopeo pulls the bundle-signed image; refused: an
#      image signed by an untrusted key, and a bundle of another image relabelled as
#      this image's referrer (its subject says so, its message digest does not)
#   4. plain sign (no --bundle) still writes the legacy .sig tag
#   5. portcullis verify IMAGE --key finds the bundle through the fallback index:
#      accepted with the signer's key; refused (exit 1, with the reason) with another
#      key, and for the bundle relabelled onto another image
#   6. containers-policy.json sigstoreSigned keyPath through the proxy gate: the
#      bundle-signed image pulls; the untrusted and relabelled ones are refused, and
#      so is the bundle under a signedIdentity that names what must be signed
source "$(dirname "$0")/lib.sh"
suite_init sign_bundle
need openssl base64 jq

signing_env 'sign bundle it pass'

# run CMD... : stdout in $T/out, stderr in $T/err; returns its status
run() { "$@" >"$T/out" 2>"$T/err"; }
expect_exit() {
  local want=$1 desc=$2 rc; shift 2
  run "$@"; rc=$?
  if [[ $rc == "$want" ]]; then ok "$desc"; return 0; fi
  not_ok "$desc" "exit $rc (want $want): $(tail -3 "$T/err")"; return 1
}
BUNDLE_TYPE=application/vnd.dev.sigstore.bundle.v0.3+json

start_upstream upstream || { not_ok "upstream registry starts" "see $T/upstream.log"; finish; }
UP=${ADDR[upstream]}
build_images || { not_ok "test images built" "see $T/build_images.log"; finish; }
for repo in lab/bundle lab/untrusted lab/relabel lab/legacy; do
  check "skopeo pushes the small image to $repo:v1" \
    sk copy -q --dest-tls-verify=false "oci:$IMG_OCI:small" "docker://$UP/$repo:v1" || finish
done
# lab/relabel gets another image (a different manifest) so that its digest differs.
check "skopeo pushes the small image as Docker v2s2 to lab/relabel:v1" \
  sk copy -q --dest-tls-verify=false --format v2s2 "oci:$IMG_OCI:small" "docker://$UP/lab/relabel:v1" || finish
D=$(manifest_digest "$UP" lab/bundle v1) || { not_ok "digest of lab/bundle:v1"; finish; }
DR=$(manifest_digest "$UP" lab/relabel v1) || { not_ok "digest of lab/relabel:v1"; finish; }
check_true "lab/relabel:v1 is another manifest" "$DR" test "$DR" != "$D"
gen_keys a b c || finish
FB=sha256-${D#sha256:}

# ---------------------------------------------------------------- 1. sign --bundle
expect_exit 0 "sign --bundle lab/bundle:v1 with key a" \
  pc sign "$UP/lab/bundle:v1" --key "$T/a.key" --bundle --allow-http --json
cp "$T/out" "$T/sign-a.json"
check_eq "... no referrers API on distribution 2.8" "false" "$(jq -r '.signed[0].referrers_api' "$T/sign-a.json")"
check_eq "... the fallback tag is sha256-<hex>" "$FB" "$(jq -r '.signed[0].fallback_tag' "$T/sign-a.json")"
REF=$(jq -r '.signed[0].referrer_digest' "$T/sign-a.json")
check_eq "... the registry has no referrers API (404)" "404" \
  "$(http_status GET "http://$UP/v2/lab/bundle/referrers/$D")"
check "... the fallback index is readable" get_manifest "$UP" lab/bundle "$FB" "$T/index.json"
check_eq "... it is an OCI index listing the referrer with the bundle artifactType" \
  "application/vnd.oci.image.index.v1+json $REF $BUNDLE_TYPE" \
  "$(jq -r '[.mediaType, .manifests[0].digest, .manifests[0].artifactType] | join(" ")' "$T/index.json")"
check "... the referrer manifest is readable by digest" get_manifest "$UP" lab/bundle "$REF" "$T/referrer.json"
check_eq "... referrer: artifactType, empty config, subject = the image" \
  "$BUNDLE_TYPE application/vnd.oci.empty.v1+json 2 $D" \
  "$(jq -r '[.artifactType, .config.mediaType, (.config.size|tostring), .subject.digest] | join(" ")' "$T/referrer.json")"
BD=$(jq -r '.layers[0].digest' "$T/referrer.json")
check_eq "... one layer of the bundle media type" "1 $BUNDLE_TYPE" \
  "$(jq -r '[(.layers|length|tostring), .layers[0].mediaType] | join(" ")' "$T/referrer.json")"
check "... the bundle blob is readable" curl -fsS --max-time 60 -o "$T/bundle.json" "http://$UP/v2/lab/bundle/blobs/$BD"
D_B64=$(printf '%b' "$(printf '%s' "${D#sha256:}" | sed 's/../\\x&/g')" | base64 -w0)
check_eq "... bundle: v0.3, public-key hint, SHA2_256 message digest = the image digest, no tlog entries" \
  "$BUNDLE_TYPE true SHA2_256 $D_B64 0" \
  "$(jq -r '[.mediaType, (.verificationMaterial.publicKey.hint != null|tostring), .messageSignature.messageDigest.algorithm,
             .messageSignature.messageDigest.digest, ((.verificationMaterial.tlogEntries // [])|length|tostring)] | join(" ")' \
     "$T/bundle.json")"
get_manifest "$UP" lab/bundle "$D" "$T/image.json"
jq -r '.messageSignature.signature' "$T/bundle.json" | base64 -d >"$T/bundle.sig"
check "... openssl verifies the bundle signature over the manifest bytes with a.pub" \
  openssl dgst -sha256 -verify "$T/a.pub" -signature "$T/bundle.sig" "$T/image.json"
check_true "... openssl refuses it with b.pub" "verified with b.pub" \
  bash -c "! openssl dgst -sha256 -verify '$T/b.pub' -signature '$T/bundle.sig' '$T/image.json' >/dev/null 2>&1"
check_eq "... no legacy .sig tag was written" "404" \
  "$(http_status GET "http://$UP/v2/lab/bundle/manifests/$FB.sig" -H "Accept: $ACCEPT_ALL")"
expect_exit 0 "sign --bundle lab/bundle:v1 with key b (second signer)" \
  pc sign "$UP/lab/bundle:v1" --key "$T/b.key" --bundle --allow-http --json
get_manifest "$UP" lab/bundle "$FB" "$T/index2.json"
check_eq "... the fallback index now lists 2 referrers, key a's first" "2 $REF" \
  "$(jq -r '[(.manifests|length|tostring), .manifests[0].digest] | join(" ")' "$T/index2.json")"
check "key generate --type ed25519" pc key generate --type ed25519 --output-prefix "$T/ed"
expect_exit 2 "sign --bundle with an Ed25519 key is refused" \
  pc sign "$UP/lab/bundle:v1" --key "$T/ed.key" --bundle --allow-http
check_true "... saying why" "$(tail -1 "$T/err")" grep -qF "ECDSA P-256 or RSA" "$T/err"
expect_exit 0 "sign --bundle lab/untrusted:v1 with key c (not trusted below)" \
  pc sign "$UP/lab/untrusted:v1" --key "$T/c.key" --bundle --allow-http

# The relabel attack: key a's bundle of lab/bundle:v1 (digest D), put in lab/relabel as a
# referrer whose subject is lab/relabel:v1 (DR), listed in DR's fallback index.
printf '{}' >"$T/empty.json"
check "relabel: the bundle blob copied into lab/relabel" curl_push_blob "$UP" lab/relabel "$T/bundle.json"
check "relabel: the empty config copied into lab/relabel" curl_push_blob "$UP" lab/relabel "$T/empty.json"
DRS=$(curl -fsS --max-time 60 -H "Accept: $ACCEPT_ALL" "http://$UP/v2/lab/relabel/manifests/$DR" | wc -c)
jq -c --arg d "$DR" --argjson s "$DRS" \
  '.subject = {mediaType:"application/vnd.docker.distribution.manifest.v2+json", digest:$d, size:$s}' \
  "$T/referrer.json" | tr -d '\n' >"$T/relabel-ref.json"
RR=$(sha_of "$T/relabel-ref.json")
check "relabel: referrer pushed" put_manifest "$UP" lab/relabel "$RR" "$T/relabel-ref.json" \
  application/vnd.oci.image.manifest.v1+json
jq -cn --arg d "$RR" --argjson s "$(wc -c <"$T/relabel-ref.json")" --arg at "$BUNDLE_TYPE" \
  '{schemaVersion:2, mediaType:"application/vnd.oci.image.index.v1+json",
    manifests:[{mediaType:"application/vnd.oci.image.manifest.v1+json", digest:$d, size:$s, artifactType:$at}]}' \
  | tr -d '\n' >"$T/relabel-index.json"
check "relabel: fallback index pushed" put_manifest "$UP" lab/relabel "sha256-${DR#sha256:}" "$T/relabel-index.json" \
  application/vnd.oci.image.index.v1+json

# ---------------------------------------------------------------- 2. portcullis verify --policy
mkdir -p "$T/pol"
cat >"$T/pol/cli.json" <<JSON
{"keys":{"a":{"path":"keys/a.pub"},"c":{"path":"keys/c.pub"}},
 "rules":[{"match":"**/lab/bundle","require":{"keys":["a"]}},
          {"match":"**/lab/untrusted","require":{"keys":["a"]}},
          {"match":"**/lab/relabel","require":{"keys":["a"]}},
          {"match":"**/lab/onlyc","require":{"keys":["c"]}}],
 "default":"reject"}
JSON
expect_exit 0 "verify --policy: lab/bundle:v1 accepted (key a's bundle)" \
  pc verify "$UP/lab/bundle:v1" --policy "$T/pol/cli.json" --allow-http
check_true "... by key a, from the fallback tag" "$(head -c 600 "$T/out")" \
  jq -e '.keys_matched == ["a"] and (.details | map(select(contains("fallback tag") and contains("verified by a"))) | length >= 1)' "$T/out"
expect_exit 1 "verify --policy: lab/untrusted:v1 (bundle by key c) refused under a key-a rule" \
  pc verify "$UP/lab/untrusted:v1" --policy "$T/pol/cli.json" --allow-http
check_true "... key c's bundle does not verify with key a" "$(tail -1 "$T/err")" \
  grep -qF "bundle not verified for a: the signature over the artifact does not verify" "$T/err"
expect_exit 1 "verify --policy: lab/relabel:v1 (key a's bundle of another image relabelled) refused" \
  pc verify "$UP/lab/relabel:v1" --policy "$T/pol/cli.json" --allow-http
check_true "... the bundle's message digest is not this image" "$(tail -1 "$T/err")" \
  grep -qF "message digest is not the artifact's" "$T/err"

# ---------------------------------------------------------------- 3. the proxy gate
cat >"$T/pol/pp.json" <<JSON
{"keys":{"a":{"path":"keys/a.pub"}},
 "rules":[{"match":"upstream.test/lab/**","require":{"keys":["a"]}}],
 "default":"reject"}
JSON
start_proxy pp --upstream "upstream.test=http://$UP" --policy "$T/pol/pp.json" ||
  { not_ok "proxy (key rule) starts" "$(tail -3 "$T/pp.log")"; finish; }
ok "proxy (key rule) starts"
P=${ADDR[pp]}
mkdir -p "$T/pull"
decision() { policy_decision pp "$1"; }
check "3. skopeo pulls upstream.test/lab/bundle:v1 through the gate (bundle by key a)" \
  sk copy -q --src-tls-verify=false "docker://$P/upstream.test/lab/bundle:v1" "oci:$T/pull/1:x"
check_true "... decision: accept, key a" "$(decision upstream.test/lab/bundle:v1)" \
  jq -e '.verdict == "accept" and (.keys == ["a"])' <<<"$(decision upstream.test/lab/bundle:v1)"
for repo in untrusted relabel; do
  if sk copy -q --src-tls-verify=false "docker://$P/upstream.test/lab/$repo:v1" "oci:$T/pull/$repo:x" >"$T/cli.out" 2>&1; then
    not_ok "3. skopeo pull of upstream.test/lab/$repo:v1 refused" "the pull succeeded"
  else
    ok "3. skopeo pull of upstream.test/lab/$repo:v1 refused"
  fi
  check_true "... decision: reject" "$(decision "upstream.test/lab/$repo:v1")" \
    jq -e '.verdict == "reject"' <<<"$(decision "upstream.test/lab/$repo:v1")"
done
check_true "... the relabelled bundle's reason names the digest mismatch" "$(decision upstream.test/lab/relabel:v1)" \
  jq -e '.reason | contains("message digest is not the artifact")' <<<"$(decision upstream.test/lab/relabel:v1)"

# ---------------------------------------------------------------- 4. the legacy default
expect_exit 0 "plain sign (no --bundle) of lab/legacy:v1" pc sign "$UP/lab/legacy:v1" --key "$T/a.key" --allow-http
DL=$(manifest_digest "$UP" lab/legacy v1)
check_eq "... writes the .sig tag" "200" \
  "$(http_status GET "http://$UP/v2/lab/legacy/manifests/sha256-${DL#sha256:}.sig" -H "Accept: $ACCEPT_ALL")"
check_eq "... and no fallback index" "404" \
  "$(http_status GET "http://$UP/v2/lab/legacy/manifests/sha256-${DL#sha256:}" -H "Accept: $ACCEPT_ALL")"

# ---------------------------------------------------------------- 5. portcullis verify --key
expect_exit 0 "5. verify --key a.pub: lab/bundle:v1 accepted (key a's bundle, via the fallback index)" \
  pc verify "$UP/lab/bundle:v1" --key "$T/a.pub" --allow-http
check_true "... prints the payload cosign v3 prints for a bundle, naming the digest" "$(head -c 400 "$T/out")" \
  jq -e --arg d "$D" 'length == 1 and .[0].critical.image["docker-manifest-digest"] == $d and
     .[0].critical.type == "https://sigstore.dev/cosign/sign/v1"' "$T/out"
check_true "... and says key b's bundle does not verify with a.pub" "$(tail -3 "$T/err")" \
  grep -qF "rejected: Sigstore bundle: the signature over the artifact does not verify" "$T/err"
expect_exit 0 "verify --key b.pub --json: lab/bundle:v1 accepted (key b's bundle)" \
  pc verify "$UP/lab/bundle:v1" --key "$T/b.pub" --allow-http --json
check_true "... one bundle verified, from the fallback tag; key a's rejected" "$(head -c 600 "$T/out")" \
  jq -e '(.verified | length) == 1 and .verified[0].kind == "sigstore-bundle" and
     (.verified[0].source | startswith("fallback tag sha256-")) and (.rejected | length) == 1' "$T/out"
expect_exit 1 "verify --key c.pub: lab/bundle:v1 refused (bundles by a and b only)" \
  pc verify "$UP/lab/bundle:v1" --key "$T/c.pub" --allow-http
check_true "... saying none of the 2 signatures verifies with c.pub" "$(tail -1 "$T/err")" \
  grep -qF "none of the 2 signatures of $UP/lab/bundle@$D verifies with $T/c.pub" "$T/err"
check_eq "... and prints no payload" "" "$(cat "$T/out")"
expect_exit 1 "verify --key a.pub: lab/untrusted:v1 (bundle by key c) refused" \
  pc verify "$UP/lab/untrusted:v1" --key "$T/a.pub" --allow-http
expect_exit 0 "... while c.pub accepts it" pc verify "$UP/lab/untrusted:v1" --key "$T/c.pub" --allow-http
expect_exit 1 "verify --key a.pub: lab/relabel:v1 (key a's bundle of lab/bundle relabelled) refused" \
  pc verify "$UP/lab/relabel:v1" --key "$T/a.pub" --allow-http
check_true "... the bundle's message digest is not this image" "$(tail -2 "$T/err")" \
  grep -qF "rejected: Sigstore bundle: the bundle's message digest is not the artifact's" "$T/err"
expect_exit 0 "verify --key a.pub: lab/legacy:v1 (.sig tag) still verifies" \
  pc verify "$UP/lab/legacy:v1" --key "$T/a.pub" --allow-http
expect_exit 2 "verify --trusted-root without --key is a usage error" \
  pc verify "$UP/lab/bundle:v1" --policy "$T/pol/cli.json" --trusted-root /nonexistent --allow-http

# ---------------------------------------------------------------- 6. containers-policy.json through the gate
mkdir -p "$T/cp/keys"
cp "$T/a.pub" "$T/cp/keys/a.pub"
cat >"$T/cp/policy.json" <<JSON
{"default":[{"type":"reject"}],
 "transports":{"docker":{
   "upstream.test/lab":[{"type":"sigstoreSigned","keyPath":"keys/a.pub","signedIdentity":{"type":"matchRepository"}}],
   "upstream.test/lab/legacy":[{"type":"sigstoreSigned","keyPath":"keys/a.pub",
      "signedIdentity":{"type":"exactRepository","dockerRepository":"$UP/lab/legacy"}}],
   "upstream.test/lab/bundle:pinned":[{"type":"sigstoreSigned","keyPath":"keys/a.pub",
      "signedIdentity":{"type":"exactRepository","dockerRepository":"upstream.test/lab/bundle"}}]}}}
JSON
check "6. skopeo tags lab/bundle:pinned (the same digest)" \
  sk copy -q --src-tls-verify=false --dest-tls-verify=false "docker://$UP/lab/bundle:v1" "docker://$UP/lab/bundle:pinned"
start_proxy cp --upstream "upstream.test=http://$UP" --policy "$T/cp/policy.json" ||
  { not_ok "proxy (containers-policy.json) starts" "$(tail -3 "$T/cp.log")"; finish; }
ok "proxy (containers-policy.json) starts"
C=${ADDR[cp]}
cdecision() { policy_decision cp "$1"; }
check "6. skopeo pulls upstream.test/lab/bundle:v1 under sigstoreSigned keyPath (bundle by key a)" \
  sk copy -q --src-tls-verify=false "docker://$C/upstream.test/lab/bundle:v1" "oci:$T/pull/cp1:x"
check_true "... decision: accept by keyPath" "$(cdecision upstream.test/lab/bundle:v1)" \
  jq -e '.verdict == "accept" and (.keys | length) == 1 and (.keys[0] | startswith("keyPath"))' \
  <<<"$(cdecision upstream.test/lab/bundle:v1)"
check "... and the legacy .sig image under exactRepository" \
  sk copy -q --src-tls-verify=false "docker://$C/upstream.test/lab/legacy:v1" "oci:$T/pull/cp2:x"
for img in lab/untrusted:v1 lab/relabel:v1 lab/bundle:pinned; do
  if sk copy -q --src-tls-verify=false "docker://$C/upstream.test/$img" "oci:$T/pull/cp3:x" >"$T/cli.out" 2>&1; then
    not_ok "6. skopeo pull of upstream.test/$img refused" "the pull succeeded"
  else
    ok "6. skopeo pull of upstream.test/$img refused"
  fi
  check_true "... decision: reject" "$(cdecision "upstream.test/$img")" \
    jq -e '.verdict == "reject"' <<<"$(cdecision "upstream.test/$img")"
done
check_true "... the relabelled bundle's reason names the digest mismatch" "$(cdecision upstream.test/lab/relabel:v1)" \
  jq -e '.reason | contains("message digest is not the artifact")' <<<"$(cdecision upstream.test/lab/relabel:v1)"
check_true "... exactRepository cannot hold for a bundle" "$(cdecision upstream.test/lab/bundle:pinned)" \
  jq -e '.reason | contains("a Sigstore bundle signs the digest only")' <<<"$(cdecision upstream.test/lab/bundle:pinned)"

finish
