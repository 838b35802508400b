#!/usr/bin/env bash
# The trust policy engine from the CLI (portcullis verify --policy, policy test,
# policy check) against a real registry (distribution 2.8, which has no referrers
# API), in both policy formats:
#   1. one key signs; a policy trusting it accepts (exit 0), one trusting another
#      key refuses (exit 1, with the reason)
#   2. 2-of-2 keys: refused with one signature, accepted once the second key signs
#   3. a .sig copied from another digest is refused: "signature is for ..."
#   4. a signature made by independent code (python3-cryptography) verifies
#   5. a cosign-style referrer (artifactType application/vnd.dev.cosign.artifact.sig.v1+json,
#      subject = the image) listed in the sha256-<hex> fallback index is found and verified
#   6. containers-policy.json: the same cases, signedIdentity, insecureAcceptAnything, reject
#   7. policy check: valid files explained (exit 0), broken ones refused naming the problem (exit 2)
source "$(dirname "$0")/lib.sh"
suite_init policy_cli
need openssl base64
signing_env 'policy it pass'

run() { "$@" >"$T/out" 2>"$T/err"; }
# expect_exit CODE DESC CMD... (stdout in $T/out, stderr in $T/err)
expect_exit() {
  local want=$1 desc=$2 rc; shift 2
  run "$@"; rc=$?
  if [[ $rc == "$want" ]]; then ok "$desc"; return 0; fi
  not_ok "$desc" "exit $rc (want $want): $(tail -3 "$T/err") $(head -c 300 "$T/out")"; return 1
}
err_has() { check_true "$1" "stderr: $(tail -2 "$T/err")" grep -qF -- "$2" "$T/err"; }
out_has() { check_true "$1" "stdout: $(head -c 400 "$T/out")" grep -qF -- "$2" "$T/out"; }
# json_is DESC JQ-EXPR [jq args...] : the last stdout satisfies the jq expression
json_is() {
  local desc=$1 expr=$2; shift 2
  check_true "$desc" "stdout: $(head -c 600 "$T/out")" jq -e "$@" "$expr" "$T/out"
}
# verify_policy IMAGE POLICY : portcullis verify IMAGE --policy POLICY --allow-http
verify_policy() { pc verify "$1" --policy "$2" --allow-http; }

b64_file() { base64 -w0 <"$1"; }

start_upstream reg || { not_ok "registry starts" "see $T/reg.log"; finish; }
R=${ADDR[reg]}
build_images || { not_ok "test images built" "see $T/build_images.log"; finish; }
for repo in lab/small lab/pysig lab/ref lab/open misc/img; do
  check "skopeo pushes the small image to $repo:v1" \
    sk copy -q --dest-tls-verify=false "oci:$IMG_OCI:small" "docker://$R/$repo:v1" || finish
done
check "skopeo pushes the small image as Docker v2s2 to lab/small:v2s2 (another digest)" \
  sk copy -q --dest-tls-verify=false --format v2s2 "oci:$IMG_OCI:small" "docker://$R/lab/small:v2s2" || finish
D=$(manifest_digest "$R" lab/small v1) || { not_ok "digest of lab/small:v1"; finish; }
D2=$(manifest_digest "$R" lab/small v2s2) || { not_ok "digest of lab/small:v2s2"; finish; }
log "lab/small:v1 is $D, lab/small:v2s2 is $D2"

gen_keys a b c

# ---------------------------------------------------------------- Portcullis policies
# pol_require FILE KEYS-JSON THRESHOLD : one rule for this registry's lab/**, default reject
pol_require() {
  cat >"$1" <<JSON
{"keys":{"a":{"path":"keys/a.pub"},"b":{"path":"keys/b.pub"},"c":{"path":"keys/c.pub"}},
 "rules":[{"match":"$R/lab/**","require":{"keys":$2,"threshold":$3}},
          {"match":"$R/lab/open","action":"accept"}],
 "default":"reject"}
JSON
}
pol_require "$T/pol/trust-a.json" '["a"]' 1
pol_require "$T/pol/trust-b.json" '["b"]' 1
pol_require "$T/pol/two-of-two.json" '["a","b"]' 2
pol_require "$T/pol/a-or-b.json" '["a","b"]' 1

# ---------------------------------------------------------------- 1. one key
expect_exit 0 "sign lab/small:v1 with key a" pc sign "$R/lab/small:v1" --key "$T/a.key" --allow-http
expect_exit 0 "verify --policy trusting a accepts (exit 0)" verify_policy "$R/lab/small:v1" "$T/pol/trust-a.json"
json_is "... JSON verdict accept by the lab/** rule, key a, the digest" \
  '.verdict == "accept" and .allowed and .rule == $r and .keys_matched == ["a"] and .digest == $d and .name == $n' \
  --arg r "$R/lab/**" --arg d "$D" --arg n "$R/lab/small"
json_is "... naming the policy format and version" '.policy.format == "portcullis" and (.policy.version | startswith("sha256:"))'
expect_exit 0 "the old --key mode still works" pc verify "$R/lab/small:v1" --key "$T/a.pub" --allow-http
expect_exit 1 "verify --policy trusting only b refuses (exit 1)" verify_policy "$R/lab/small:v1" "$T/pol/trust-b.json"
json_is "... JSON verdict reject: no signature by a trusted key" \
  '.verdict == "reject" and (.allowed | not) and (.reason | startswith("no signature by a trusted key"))'
err_has "... and says why on stderr" "no signature by a trusted key"
expect_exit 2 "--key and --policy together are a usage error" \
  pc verify "$R/lab/small:v1" --key "$T/a.pub" --policy "$T/pol/trust-a.json" --allow-http
expect_exit 1 "policy test exits 1 for a refusal" pc policy test "$R/lab/small:v1" --policy "$T/pol/trust-b.json" --allow-http
out_has "... printing the verdict" "verdict:  reject"
out_has "... and the reason" "reason:   no signature by a trusted key"
expect_exit 1 "an image no rule matches falls to the default (reject)" verify_policy "$R/misc/img:v1" "$T/pol/trust-a.json"
json_is "... rule default" '.rule == "default" and .verdict == "reject" and (.reason | startswith("no rule matches"))'
expect_exit 0 "an accept rule serves an unsigned image" verify_policy "$R/lab/open:v1" "$T/pol/trust-a.json"
json_is "... without looking for signatures" '.rule == $r and .signatures_found == 0 and (has("referrers_api") | not)' \
  --arg r "$R/lab/open"

# ---------------------------------------------------------------- 2. 2-of-2
expect_exit 1 "2-of-2 with only a's signature is refused" verify_policy "$R/lab/small:v1" "$T/pol/two-of-two.json"
json_is "... reason: 2 of 2 keys required, 1 found (a)" '.reason == "2 of 2 keys required, 1 found (a)"'
expect_exit 0 "a 1-of-2 policy (a or b) accepts" verify_policy "$R/lab/small:v1" "$T/pol/a-or-b.json"
expect_exit 0 "sign lab/small:v1 with key b too" pc sign "$R/lab/small:v1" --key "$T/b.key" --allow-http
expect_exit 0 "2-of-2 accepts once b signed" verify_policy "$R/lab/small:v1" "$T/pol/two-of-two.json"
json_is "... with keys a and b" '.keys_matched == ["a","b"] and .reason == "2 of 2 keys required, 2 found (a, b)"'
expect_exit 0 "policy test shows the rule and the verdict" \
  pc policy test "$R/lab/small:v1" --policy "$T/pol/two-of-two.json" --allow-http
out_has "... the rule" "rule:     $R/lab/**"
out_has "... the verdict" "verdict:  accept"
out_has "... the digest" "$D"
out_has "... each signature" "verified by a"
expect_exit 0 "policy test --json: trust-b accepts after b signed" \
  pc policy test "$R/lab/small:v1" --policy "$T/pol/trust-b.json" --allow-http --json
json_is "... JSON as verify --policy prints it" '.verdict == "accept" and .keys_matched == ["b"]'
expect_exit 2 "policy test against https on a plain-http registry is an error" \
  pc policy test "$R/lab/small:v1" --policy "$T/pol/trust-b.json"
err_has "... suggesting --allow-http" "--allow-http"

# ---------------------------------------------------------------- 3. a .sig copied from another digest
get_manifest "$R" lab/small "sha256-${D#sha256:}.sig" "$T/sig-of-D.json"
check "the .sig manifest of $D is copied to the .sig tag of $D2 (curl)" \
  put_manifest "$R" lab/small "sha256-${D2#sha256:}.sig" "$T/sig-of-D.json" "application/vnd.oci.image.manifest.v1+json"
expect_exit 1 "the copied signature is refused" verify_policy "$R/lab/small:v2s2" "$T/pol/trust-a.json"
json_is "... reason: signature is for D, not D2" '.reason == ("signature is for " + $d + ", not " + $d2)' \
  --arg d "$D" --arg d2 "$D2"
expect_exit 1 "(control) --key mode refuses it too" pc verify "$R/lab/small:v2s2" --key "$T/a.pub" --allow-http

# ---------------------------------------------------------------- 4. independent code signs
mkdir -p "$T/py"
check "python makes a P-256 key pair" "$PY" "$SPY" keygen "$T/py"
cp "$T/py/py.pub" "$T/pol/keys/py.pub"
"$PY" "$SPY" payload "$R/lab/pysig" "$D" >"$T/py/payload.json"
pysig=$("$PY" "$SPY" sign "$T/py/py.pem" "$T/py/payload.json")
check "python builds a cosign .sig image" "$PY" "$SPY" sigimage "$T/py/payload.json" "$pysig" "$T/py"
check "curl uploads the payload blob" curl_push_blob "$R" lab/pysig "$T/py/payload.json"
check "curl uploads the config blob" curl_push_blob "$R" lab/pysig "$T/py/config.json"
check "curl puts the .sig manifest" \
  put_manifest "$R" lab/pysig "sha256-${D#sha256:}.sig" "$T/py/manifest.json" "application/vnd.oci.image.manifest.v1+json"
cat >"$T/pol/trust-py.json" <<JSON
{"keys":{"py":{"path":"keys/py.pub"}},
 "rules":[{"match":"$R/lab/*","require":{"keys":["py"]},"identity":"$R/lab/*"}]}
JSON
expect_exit 0 "the python-made signature verifies under a policy trusting python's key" \
  verify_policy "$R/lab/pysig:v1" "$T/pol/trust-py.json"
json_is "... found in the .sig tag" '.keys_matched == ["py"] and (.details[0] | contains(".sig"))'
cat >"$T/pol/trust-py-wrong-identity.json" <<JSON
{"keys":{"py":{"path":"keys/py.pub"}},
 "rules":[{"match":"$R/lab/*","require":{"keys":["py"]},"identity":"elsewhere.example/**"}]}
JSON
expect_exit 1 "an identity pattern the payload does not match refuses" \
  verify_policy "$R/lab/pysig:v1" "$T/pol/trust-py-wrong-identity.json"
json_is "... naming the identity" '.reason == ("identity " + $id + " does not match elsewhere.example/**")' \
  --arg id "$R/lab/pysig"

# ---------------------------------------------------------------- 5. referrer in the fallback tag
msize=$(curl -fsS --max-time 60 -H "Accept: $ACCEPT_ALL" "http://$R/v2/lab/ref/manifests/v1" | wc -c)
cosign_referrer "$T/py" "$R/lab/ref" "$D" "$msize"
check "curl uploads the referrer's payload blob" curl_push_blob "$R" lab/ref "$T/py/ref-payload.json"
check "curl uploads the empty config blob" curl_push_blob "$R" lab/ref "$T/py/empty.json"
check "curl puts the cosign referrer manifest by digest" \
  put_manifest "$R" lab/ref "$RD" "$T/py/referrer.json" "application/vnd.oci.image.manifest.v1+json"
check "curl puts the referrers index under the fallback tag sha256-<hex>" \
  put_manifest "$R" lab/ref "sha256-${D#sha256:}" "$T/py/fallback-index.json" "application/vnd.oci.image.index.v1+json"
check_eq "(distribution 2.8 has no referrers API: 404)" 404 \
  "$(http_status GET "http://$R/v2/lab/ref/referrers/$D" -H 'Accept: application/vnd.oci.image.index.v1+json')"
check_eq "(lab/ref has no .sig tag)" 404 \
  "$(http_status GET "http://$R/v2/lab/ref/manifests/sha256-${D#sha256:}.sig" -H "Accept: $ACCEPT_ALL")"
expect_exit 0 "the referrer in the fallback tag is found and verified" verify_policy "$R/lab/ref:v1" "$T/pol/trust-py.json"
json_is "... reported as found through the fallback tag" \
  '.keys_matched == ["py"] and .signatures_found == 1 and .referrers_api == false and (.details[0] | contains("fallback tag sha256-"))'
expect_exit 0 "--key mode finds the referrer in the fallback tag too (as cosign v3 verify --key)" \
  pc verify "$R/lab/ref:v1" --key "$T/py/py.pub" --allow-http
expect_exit 1 "... and refuses it with another key" pc verify "$R/lab/ref:v1" --key "$T/a.pub" --allow-http
expect_exit 0 "policy test shows the fallback-tag signature" \
  pc policy test "$R/lab/ref@$D" --policy "$T/pol/trust-py.json" --allow-http
out_has "... as found through the fallback tag" "fallback tag sha256-${D#sha256:} -> $RD"

# ---------------------------------------------------------------- 6. containers-policy.json
# cp_sigstore FILE REQUIREMENT-JSON : scope "<registry>/lab" with one requirement list
cp_policy() {
  printf '{"default":[{"type":"reject"}],"transports":{"docker":{%s},"docker-daemon":{"":[{"type":"insecureAcceptAnything"}]}}}\n' "$2" >"$1"
}
ID_REPO='"signedIdentity":{"type":"matchRepository"}'
cp_policy "$T/pol/cp-a.json" "\"$R/lab\":[{\"type\":\"sigstoreSigned\",\"keyPath\":\"keys/a.pub\",$ID_REPO}]"
cp_policy "$T/pol/cp-c.json" "\"$R/lab\":[{\"type\":\"sigstoreSigned\",\"keyPath\":\"keys/c.pub\",$ID_REPO}]"
cp_policy "$T/pol/cp-keydata.json" \
  "\"$R/lab/small\":[{\"type\":\"sigstoreSigned\",\"keyData\":\"$(b64_file "$T/a.pub")\",$ID_REPO}]"
cp_policy "$T/pol/cp-keypaths.json" \
  "\"$R\":[{\"type\":\"sigstoreSigned\",\"keyPaths\":[\"keys/c.pub\",\"keys/py.pub\"],$ID_REPO}]"
cp_policy "$T/pol/cp-keydatas-both.json" \
  "\"$R/lab/small\":[{\"type\":\"sigstoreSigned\",\"keyDatas\":[\"$(b64_file "$T/a.pub")\"],$ID_REPO},{\"type\":\"sigstoreSigned\",\"keyDatas\":[\"$(b64_file "$T/c.pub")\",\"$(b64_file "$T/b.pub")\"],$ID_REPO}]"
cp_policy "$T/pol/cp-default-identity.json" "\"$R/lab\":[{\"type\":\"sigstoreSigned\",\"keyPath\":\"keys/a.pub\"}]"
cp_policy "$T/pol/cp-open.json" \
  "\"$R/lab/open\":[{\"type\":\"insecureAcceptAnything\"}],\"$R/lab/small:v1\":[{\"type\":\"reject\"}],\"\":[{\"type\":\"sigstoreSigned\",\"keyPath\":\"keys/a.pub\",$ID_REPO}]"

expect_exit 0 "containers-policy: sigstoreSigned keyPath a accepts" verify_policy "$R/lab/small:v1" "$T/pol/cp-a.json"
json_is "... by scope <registry>/lab" '.verdict == "accept" and .rule == ("transports.docker[\"" + $s + "\"]") and .policy.format == "containers-policy"' \
  --arg s "$R/lab"
expect_exit 1 "containers-policy: trusting only key c refuses" verify_policy "$R/lab/small:v1" "$T/pol/cp-c.json"
json_is "... no signature by a trusted key" '.reason | startswith("no signature by a trusted key")'
expect_exit 0 "containers-policy: keyData (base64 PEM) accepts" verify_policy "$R/lab/small:v1" "$T/pol/cp-keydata.json"
expect_exit 0 "containers-policy: two sigstoreSigned requirements (a; c or b) both hold" \
  verify_policy "$R/lab/small:v1" "$T/pol/cp-keydatas-both.json"
expect_exit 1 "containers-policy: default signedIdentity (matchRepoDigestOrExact) refuses cosign's repository-only identity" \
  verify_policy "$R/lab/small:v1" "$T/pol/cp-default-identity.json"
json_is "... saying so" '.reason | contains("names a repository only")'
expect_exit 1 "containers-policy: the copied .sig is refused" verify_policy "$R/lab/small:v2s2" "$T/pol/cp-a.json"
json_is "... signature is for D, not D2" '.reason == ("signature is for " + $d + ", not " + $d2)' --arg d "$D" --arg d2 "$D2"
expect_exit 0 "containers-policy: keyPaths with python's key accepts the python-made .sig" \
  verify_policy "$R/lab/pysig:v1" "$T/pol/cp-keypaths.json"
expect_exit 0 "containers-policy: ... and the referrer in the fallback tag" \
  verify_policy "$R/lab/ref:v1" "$T/pol/cp-keypaths.json"
json_is "... through the fallback tag" '(.details[0] | contains("fallback tag"))'
expect_exit 0 "containers-policy: insecureAcceptAnything serves the unsigned lab/open" \
  verify_policy "$R/lab/open:v1" "$T/pol/cp-open.json"
expect_exit 1 "containers-policy: a reject scope for lab/small:v1 (most specific) refuses" \
  verify_policy "$R/lab/small:v1" "$T/pol/cp-open.json"
json_is "... rejected by that scope" '.reason == ("rejected by transports.docker[\"" + $s + "\"] (reject)")' \
  --arg s "$R/lab/small:v1"
expect_exit 0 "containers-policy: the same image by digest falls to the \"\" scope and verifies" \
  verify_policy "$R/lab/small@$D" "$T/pol/cp-open.json"
json_is "... rule transports.docker[\"\"]" '.rule == "transports.docker[\"\"]"'

# ---------------------------------------------------------------- 7. policy check
expect_exit 0 "policy check accepts a valid Portcullis policy" pc policy check "$T/pol/two-of-two.json"
out_has "... and explains its rules" "require signatures by 2 of 2 keys [a, b]"
expect_exit 0 "policy check accepts a valid containers-policy.json" pc policy check "$T/pol/cp-open.json"
out_has "... and explains its scopes" "format: containers-policy"
# broken FILE CONTENT EXPECTED-TEXT
broken() {
  printf '%s' "$2" >"$T/pol/$1"
  expect_exit 2 "policy check refuses $1 (exit 2)" pc policy check "$T/pol/$1"
  err_has "... naming the problem: $3" "$3"
}
broken bad-json.json '{"rules":[' "not valid JSON"
broken unknown-field.json '{"rules":[],"rulez":[]}' 'unknown field "rulez"'
broken missing-key.json '{"keys":{"a":{"path":"keys/nope.pub"}},"rules":[]}' "keys.a.path: $T/pol/keys/nope.pub"
broken threshold.json '{"keys":{"a":{"path":"keys/a.pub"},"b":{"path":"keys/b.pub"}},"rules":[{"match":"**","require":{"keys":["a","b"],"threshold":3}}]}' \
  "rules[0].require.threshold: 3 is more than the 2 listed keys"
broken unknown-key.json '{"keys":{"a":{"path":"keys/a.pub"}},"rules":[{"match":"**","require":{"keys":["zz"]}}]}' \
  'rules[0].require.keys[0]: unknown key "zz"'
broken bad-glob.json '{"rules":[{"match":"docker.io/***","action":"accept"}]}' "rules[0].match: bad pattern"
broken private-key.json "{\"keys\":{\"a\":{\"path\":\"$T/a.key\"}},\"rules\":[]}" 'unknown PEM type'
broken cp-signedby.json '{"default":[{"type":"signedBy","keyType":"GPGKeys","keyPath":"/etc/pki/key.gpg"}]}' '"signedBy"'
broken cp-fulcio.json '{"default":[{"type":"sigstoreSigned","fulcio":{"caPath":"/x","oidcIssuer":"i","subjectEmail":"e"},"rekorPublicKeyPath":"keys/a.pub"}]}' \
  "default[0].fulcio.caPath: "
broken cp-fulcio-norekor.json '{"default":[{"type":"sigstoreSigned","fulcio":{"caPath":"/x","oidcIssuer":"i","subjectEmail":"e"}}]}' \
  "must be specified if fulcio is used"
broken cp-rekor.json '{"default":[{"type":"sigstoreSigned","keyPath":"keys/a.pub","rekorPublicKeyPath":"/r.pub"}]}' \
  "default[0].rekorPublicKeyPath"
broken cp-unknown.json '{"default":[{"type":"reject"}],"transport":{}}' 'unknown field "transport"'
broken cp-two-keys.json '{"default":[{"type":"sigstoreSigned","keyPath":"keys/a.pub","keyPaths":["keys/b.pub"]}]}' \
  "exactly one of keyPath, keyPaths, keyData, keyDatas and fulcio"
expect_exit 2 "verify --policy with a broken policy is an error (exit 2)" verify_policy "$R/lab/small:v1" "$T/pol/threshold.json"
err_has "... naming the field" "threshold"
expect_exit 2 "policy check of a missing file" pc policy check "$T/pol/absent.json"

finish
