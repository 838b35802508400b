#!/usr/bin/env bash
# Keyless cosign v3 Sigstore bundles through the proxy gate, end to end, with a trust root the
# test controls:
#   keyless_fixture.py (python3-cryptography, independent of Portcullis) makes a "Fulcio"
#   (root -> intermediate), a "Rekor" v1 log key and a CT log key, a trusted_root.json
#   trusting them, and a foreign world; for an image digest it writes what `cosign sign`
#   (v3) stores: a v0.3 bundle with a DSSE in-toto statement (predicateType
#   https://sigstore.dev/cosign/sign/v1, the digest as subject) signed by a fresh Fulcio-style
#   leaf (email SAN, OIDC issuer extension, embedded SCT), logged as a dsse 0.0.1 entry with
#   its SET, inclusion proof and signed checkpoint. curl attaches it to the image in a
#   docker-registry 2.8 upstream (no referrers API) as cosign v3 does there: the bundle as the
#   one layer of a referrer manifest (artifactType application/vnd.dev.sigstore.bundle.v0.3+json,
#   subject = the image) listed in the fallback index under the tag sha256-<hex>. No .sig tag.
#   1. a Portcullis policy (trusted_root = that file) requiring the keyless identity:
#      skopeo pulls the image through `portcullis serve`
#   2. ATTACKS, each refused with 403 DENIED naming the reason (proxy log decision + body):
#      a rule naming another subject; another issuer; the bundle of another image copied
#      onto this one; a leaf from a foreign CA (logged by the trusted Rekor); a tampered
#      inclusion proof; a tampered SET; a certificate expired at the signing time; an in-toto
#      attestation of another predicate type (SLSA provenance) about the image
#   3. portcullis verify --policy agrees, against the registry directly
#   4. portcullis verify IMAGE --certificate-identity/--certificate-oidc-issuer (exact and
#      regexp) --trusted-root: exit 0 for the right identity (the bundle, and a legacy keyless
#      .sig of lab/kleg), 1 with the reason for each attack, 2 for usage errors; the built-in
#      public-good root refuses the fixture's bundle
#   5. podman (through a registries.conf mirror at the proxy) pulls the signed image; another
#      subject and a tampered inclusion proof are refused
source "$(dirname "$0")/lib.sh"
suite_init keyless_bundle_proxy
need openssl jq curl

KF="$IT_DIR/keyless_fixture.py"
EMAIL=release@example.com
ISSUER=https://issuer.test.example
BUNDLE_TYPE=application/vnd.dev.sigstore.bundle.v0.3+json

start_upstream upstream || { not_ok "upstream registry starts" "see $T/upstream.log"; finish; }
UP=${ADDR[upstream]}
build_images || { not_ok "test images built" "see $T/build_images.log"; finish; }
REPOS="kb kbsub kbiss kbcopied kbforeign kbproof kbset kbexpired kbatt kleg"
for r in $REPOS; do
  check "skopeo pushes the small image to lab/$r:v1" \
    sk copy -q --dest-tls-verify=false "oci:$IMG_OCI:small" "docker://$UP/lab/$r:v1" || finish
done
D=$(manifest_digest "$UP" lab/kb v1) || { not_ok "digest of lab/kb:v1"; finish; }
# lab/kbcopied:v2 is another manifest (v2s2): lab/kb's bundle is copied onto it below
check "skopeo pushes the small image as v2s2 to lab/kbcopied:v2" \
  sk copy -q --dest-tls-verify=false --format v2s2 "oci:$IMG_OCI:small" "docker://$UP/lab/kbcopied:v2" || finish
DC=$(manifest_digest "$UP" lab/kbcopied v2)
check_true "lab/kbcopied:v2 is another manifest" "$DC" test "$DC" != "$D"

check "keyless_fixture.py makes the trusted world (Fulcio root + intermediate, Rekor, CT, trusted_root.json)" \
  "$PY" "$KF" world "$T/w" || finish
check "... and a foreign one" "$PY" "$KF" world "$T/f" || finish

# attach REPO SUBJECT_DIGEST SUBJECT_MEDIA_TYPE BUNDLE_FILE : what cosign v3 does on a registry
# without the referrers API: the bundle blob, the empty config, a referrer manifest whose subject
# is the image, and the fallback index sha256-<hex> listing it
attach() {
  local repo=$1 subj=$2 smt=$3 bundle=$4 w=$T/att-$1 ss rd
  mkdir -p "$w"
  get_manifest "$UP" "lab/$repo" "$subj" "$w/subject.json" || return 1
  ss=$(wc -c <"$w/subject.json")
  printf '{}' >"$w/empty.json"
  jq -cn --arg at "$BUNDLE_TYPE" --arg cd "$(sha_of "$w/empty.json")" \
    --arg bd "$(sha_of "$bundle")" --argjson bs "$(wc -c <"$bundle")" \
    --arg subj "$subj" --arg smt "$smt" --argjson ss "$ss" --arg title "sha256-${subj#sha256:}.sigstore.json" \
    '{schemaVersion:2, mediaType:"application/vnd.oci.image.manifest.v1+json", artifactType:$at,
      config:{mediaType:"application/vnd.oci.empty.v1+json", digest:$cd, size:2},
      layers:[{mediaType:$at, digest:$bd, size:$bs, annotations:{"org.opencontainers.image.title":$title}}],
      subject:{mediaType:$smt, digest:$subj, size:$ss},
      annotations:{"dev.sigstore.bundle.content":"dsse-envelope",
                   "dev.sigstore.bundle.predicateType":"https://sigstore.dev/cosign/sign/v1"}}' \
    | tr -d '\n' >"$w/referrer.json"
  rd=$(sha_of "$w/referrer.json")
  jq -cn --arg at "$BUNDLE_TYPE" --arg rd "$rd" --argjson rs "$(wc -c <"$w/referrer.json")" \
    '{schemaVersion:2, mediaType:"application/vnd.oci.image.index.v1+json",
      manifests:[{mediaType:"application/vnd.oci.image.manifest.v1+json", digest:$rd, size:$rs, artifactType:$at,
                  annotations:{"dev.sigstore.bundle.content":"dsse-envelope",
                               "dev.sigstore.bundle.predicateType":"https://sigstore.dev/cosign/sign/v1"}}]}' \
    | tr -d '\n' >"$w/index.json"
  curl_push_blob "$UP" "lab/$repo" "$bundle" && curl_push_blob "$UP" "lab/$repo" "$w/empty.json" &&
  put_manifest "$UP" "lab/$repo" "$rd" "$w/referrer.json" application/vnd.oci.image.manifest.v1+json &&
  put_manifest "$UP" "lab/$repo" "sha256-${subj#sha256:}" "$w/index.json" application/vnd.oci.image.index.v1+json
}
OCI_MT=application/vnd.oci.image.manifest.v1+json
# make_bundle NAME CA_DIR LOG_DIR [VARIANT] : a v3 bundle for D in $T/b-NAME/bundle.json
make_bundle() { "$PY" "$KF" bundle "$2" "$3" "$EMAIL" "$ISSUER" "$D" "$T/b-$1" ${4:+"$4"}; }

for r in kb kbsub kbiss; do
  check "v3 bundle for lab/$r:v1 (trusted CA, trusted Rekor) made" make_bundle "$r" "$T/w" "$T/w"
  check "... attached as a referrer in the fallback index sha256-<hex>" attach "$r" "$D" "$OCI_MT" "$T/b-$r/bundle.json"
done
check "lab/kb's bundle attached to lab/kbcopied:v2 ($DC), another image" \
  attach kbcopied "$DC" application/vnd.docker.distribution.manifest.v2+json "$T/b-kb/bundle.json"
check "v3 bundle for lab/kbforeign:v1 (foreign CA, trusted Rekor and CT) made" make_bundle kbforeign "$T/f" "$T/w"
check "... attached" attach kbforeign "$D" "$OCI_MT" "$T/b-kbforeign/bundle.json"
for v in proof set expired att; do
  check "v3 bundle for lab/kb$v:v1 (trusted CA and Rekor, variant $v) made" make_bundle "kb$v" "$T/w" "$T/w" \
    "$(case $v in expired) echo expired ;; att) echo attestation ;; *) echo "tamper$v" ;; esac)"
  check "... attached" attach "kb$v" "$D" "$OCI_MT" "$T/b-kb$v/bundle.json"
done
# lab/kleg:v1: a legacy keyless .sig (cosign v1/v2 layout), for verify --certificate-identity below
"$PY" "$SPY" payload "$UP/lab/kleg" "$D" >"$T/payload.json"
w=$T/sig-kleg; mkdir -p "$w"
check "legacy keyless .sig of lab/kleg:v1 (trusted CA, trusted Rekor) pushed" bash -c '
  "$1" "$2" sig "$3/w" "$3/w" "$4" "$5" "$3/payload.json" "$6" &&
  "$1" "$7" sigimage "$3/payload.json" "$(jq -r ".\"dev.cosignproject.cosign/signature\"" "$6/annotations.json")" "$6" &&
  jq -c --slurpfile a "$6/annotations.json" ".layers[0].annotations = \$a[0]" "$6/manifest.json" | tr -d "\n" \
    >"$6/keyless-manifest.json"' _ "$PY" "$KF" "$T" "$EMAIL" "$ISSUER" "$w" "$SPY" &&
  curl_push_blob "$UP" lab/kleg "$T/payload.json" && curl_push_blob "$UP" lab/kleg "$w/config.json" &&
  put_manifest "$UP" lab/kleg "sha256-${D#sha256:}.sig" "$w/keyless-manifest.json" application/vnd.oci.image.manifest.v1+json

check_true "the bundle is a v0.3 DSSE cosign image signature of $D, with a certificate and one Rekor entry" \
  "$(head -c 300 "$T/b-kb/bundle.json")" \
  jq -e --arg h "${D#sha256:}" '.mediaType == "application/vnd.dev.sigstore.bundle.v0.3+json" and
     (.verificationMaterial.certificate.rawBytes | length > 100) and (.verificationMaterial.tlogEntries | length == 1) and
     (.dsseEnvelope.payload | @base64d | fromjson | .predicateType == "https://sigstore.dev/cosign/sign/v1"
        and .subject[0].digest.sha256 == $h)' "$T/b-kb/bundle.json"
check_eq "the upstream has no referrers API (404): the fallback index is what the gate reads" "404" \
  "$(http_status GET "http://$UP/v2/lab/kb/referrers/$D")"
check_eq "... and no legacy .sig tag" "404" \
  "$(http_status GET "http://$UP/v2/lab/kb/manifests/sha256-${D#sha256:}.sig" -H "Accept: $ACCEPT_ALL")"

# ---------------------------------------------------------------- the policy
mkdir -p "$T/pol"
cp "$T/w/trusted_root.json" "$T/pol/trusted_root.json"
ident() { jq -cn --arg s "$1" --arg i "$2" '{issuer:$i, subject:$s}'; }
rules=$(for r in kb kbcopied kbforeign kbproof kbset kbexpired kbatt; do
          printf '{"match":"**/lab/%s","require":{"identities":[%s]}},' "$r" "$(ident "$EMAIL" "$ISSUER")"; done)
cat >"$T/pol/keyless.json" <<JSON
{"trusted_root":"trusted_root.json",
 "rules":[$rules
          {"match":"**/lab/kbsub","require":{"identities":[$(ident mallory@example.com "$ISSUER")]}},
          {"match":"**/lab/kbiss","require":{"identities":[$(ident "$EMAIL" https://accounts.other.example)]}}],
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
check "1. skopeo pulls upstream.test/lab/kb:v1 through the gate (v3 bundle by $EMAIL, fallback index)" \
  sk copy -q --src-tls-verify=false "docker://$P/upstream.test/lab/kb:v1" "oci:$T/pull/ok:x"
check_true "... decision: accept by identity:$EMAIL" "$(decision pp upstream.test/lab/kb:v1)" \
  jq -e --arg k "identity:$EMAIL" '.verdict == "accept" and .keys == [$k]' <<<"$(decision pp upstream.test/lab/kb:v1)"
check_true "... the pulled image is the signed digest" "$(head -c 300 "$T/pull/ok/index.json" 2>/dev/null)" \
  jq -e --arg d "$D" '.manifests[0].digest == $d' "$T/pull/ok/index.json"

# ---------------------------------------------------------------- 2. refused
# refused REPO REF WHY : the pull fails with the gate's error; the decision and the 403 say WHY
refused() {
  local repo=$1 ref=$2 why=$3 code
  if sk copy -q --src-tls-verify=false "docker://$P/upstream.test/lab/$repo:$ref" "oci:$T/pull/$repo:x" >"$T/cli.out" 2>&1; then
    not_ok "2. skopeo pull of upstream.test/lab/$repo:$ref refused" "the pull succeeded"
  else
    ok "2. skopeo pull of upstream.test/lab/$repo:$ref refused"
    check_true "... skopeo reports the gate's denial" "$(grep -v '^$' "$T/cli.out" | tail -1 | cut -c1-300)" \
      grep -qiE 'denied|403' "$T/cli.out"
  fi
  check_true "... decision: reject, because $why" "$(decision pp "upstream.test/lab/$repo:$ref")" \
    jq -e --arg w "$why" '.verdict == "reject" and (.reason | contains($w))' <<<"$(decision pp "upstream.test/lab/$repo:$ref")"
  code=$(curl -sS --max-time 60 -o "$T/body" -w '%{http_code}' -H "Accept: $ACCEPT_ALL" \
         "http://$P/v2/upstream.test/lab/$repo/manifests/$ref")
  check_true "... GET manifest: 403 DENIED naming the reason" "HTTP $code $(head -c 300 "$T/body")" \
    jq -e --arg w "$why" '.errors[0].code == "DENIED" and (.errors[0].message | startswith("refused by the trust policy")) and
       (.errors[0].message | contains($w))' "$T/body"
}
WHY_SUB="certificate identity \"$EMAIL\" does not match \"mallory@example.com\""
WHY_ISS="certificate OIDC issuer \"$ISSUER\" does not match \"https://accounts.other.example\""
WHY_COPIED="the artifact's sha256 is not among the in-toto statement's subjects"
WHY_FOREIGN="does not chain to a trusted Fulcio CA"
WHY_PROOF="inclusion proof: the computed root hash does not match the proof's root hash"
WHY_SET="the signed entry timestamp does not verify with the log key of https://rekor.test.example"
WHY_EXPIRED="certificate has expired"
WHY_ATT="an attestation (predicateType \"https://slsa.dev/provenance/v1\"), not a cosign image signature"
refused kbsub v1 "$WHY_SUB"
refused kbiss v1 "$WHY_ISS"
refused kbcopied v2 "$WHY_COPIED"
refused kbforeign v1 "$WHY_FOREIGN"
refused kbproof v1 "$WHY_PROOF"
refused kbset v1 "$WHY_SET"
refused kbexpired v1 "$WHY_EXPIRED"
refused kbatt v1 "$WHY_ATT"

# ---------------------------------------------------------------- 3. verify --policy
expect3() {
  local want=$1 repo=$2 ref=$3 rc
  pc verify "$UP/lab/$repo:$ref" --policy "$T/pol/keyless.json" --allow-http >"$T/out" 2>"$T/err"; rc=$?
  check_eq "3. verify --policy $UP/lab/$repo:$ref exits $want" "$want" "$rc"
}
expect3 0 kb v1
check_true "... verified by identity:$EMAIL" "$(head -c 400 "$T/out")" \
  jq -e --arg k "identity:$EMAIL" '.allowed and .keys_matched == [$k]' "$T/out"
for r in kbsub kbiss kbforeign kbproof kbset kbexpired kbatt; do expect3 1 "$r" v1; done
expect3 1 kbcopied v2

# ---------------------------------------------------------------- 4. verify --certificate-identity
TR=(--trusted-root "$T/w/trusted_root.json")
# expect4 WANT DESC IMAGE ARGS... : portcullis verify IMAGE ARGS --allow-http exits WANT
expect4() {
  local want=$1 desc=$2 img=$3 rc; shift 3
  pc verify "$UP/lab/$img" "$@" --allow-http >"$T/out" 2>"$T/err"; rc=$?
  check_eq "4. verify $desc: lab/$img exits $want" "$want" "$rc" || log "stderr: $(tail -3 "$T/err")"
}
expect4 0 "--certificate-identity $EMAIL --certificate-oidc-issuer $ISSUER" kb:v1 \
  --certificate-identity "$EMAIL" --certificate-oidc-issuer "$ISSUER" "${TR[@]}"
check_true "... prints the cosign v3 payload naming $D" "$(head -c 400 "$T/out")" \
  jq -e --arg d "$D" 'length == 1 and .[0].critical.image."docker-manifest-digest" == $d and
     .[0].critical.type == "https://sigstore.dev/cosign/sign/v1"' "$T/out"
check_true "... stderr says the certificate identity matched" "$(tail -3 "$T/err")" \
  grep -q "The certificate identity matched keyless subject \"$EMAIL\"" "$T/err"
expect4 0 "--json (exact identity)" kb:v1 --certificate-identity "$EMAIL" --certificate-oidc-issuer "$ISSUER" \
  "${TR[@]}" --json
check_true "... the report: one bundle from the fallback tag, certificate $EMAIL / $ISSUER" "$(head -c 600 "$T/out")" \
  jq -e --arg e "$EMAIL" --arg i "$ISSUER" '(.verified | length) == 1 and .verified[0].kind == "sigstore-bundle" and
     (.verified[0].source | startswith("fallback tag sha256-")) and .verified[0].certificate.issuer == $i and
     .verified[0].certificate.subject_alternative_names == [$e] and .rejected == []' "$T/out"
expect4 0 "--certificate-identity-regexp/--certificate-oidc-issuer-regexp" kb:v1 \
  --certificate-identity-regexp '.*@example\.com' --certificate-oidc-issuer-regexp 'https://issuer\.test\..*' "${TR[@]}"
expect4 0 "(legacy keyless .sig)" kleg:v1 --certificate-identity "$EMAIL" --certificate-oidc-issuer "$ISSUER" \
  "${TR[@]}" --json
check_true "... the report: the simple-signing .sig, certificate $EMAIL" "$(head -c 600 "$T/out")" \
  jq -e --arg e "$EMAIL" --arg d "$D" '(.verified | length) == 1 and .verified[0].kind == "simple-signing" and
     .verified[0].payload.critical.image."docker-manifest-digest" == $d and
     .verified[0].certificate.subject_alternative_names == [$e]' "$T/out"
# refused4 DESC IMAGE WHY ARGS... : exit 1, stderr names WHY
refused4() {
  local desc=$1 img=$2 why=$3; shift 3
  expect4 1 "$desc" "$img" "$@"
  check_true "... stderr: $why" "$(tail -3 "$T/err" | cut -c1-400)" grep -qF -- "$why" "$T/err"
}
ID=(--certificate-identity "$EMAIL" --certificate-oidc-issuer "$ISSUER")
refused4 "another subject" kb:v1 "certificate identity \"$EMAIL\" does not match \"mallory@example.com\"" \
  --certificate-identity mallory@example.com --certificate-oidc-issuer "$ISSUER" "${TR[@]}"
refused4 "another issuer" kb:v1 "$WHY_ISS" \
  --certificate-identity "$EMAIL" --certificate-oidc-issuer https://accounts.other.example "${TR[@]}"
refused4 "a regexp that matches only part of the subject" kb:v1 "does not match /release@example/" \
  --certificate-identity-regexp 'release@example' --certificate-oidc-issuer "$ISSUER" "${TR[@]}"
refused4 "(bundle copied from another image)" kbcopied:v2 "$WHY_COPIED" "${ID[@]}" "${TR[@]}"
refused4 "(foreign CA)" kbforeign:v1 "$WHY_FOREIGN" "${ID[@]}" "${TR[@]}"
refused4 "(tampered inclusion proof)" kbproof:v1 "$WHY_PROOF" "${ID[@]}" "${TR[@]}"
refused4 "(tampered SET)" kbset:v1 "$WHY_SET" "${ID[@]}" "${TR[@]}"
refused4 "(certificate expired at signing time)" kbexpired:v1 "$WHY_EXPIRED" "${ID[@]}" "${TR[@]}"
refused4 "(an SLSA provenance attestation, not a signature)" kbatt:v1 "$WHY_ATT" "${ID[@]}" "${TR[@]}"
refused4 "without --trusted-root (the public-good root does not trust the fixture's log)" kb:v1 \
  "the log entry is from a log that is not in the trusted root" "${ID[@]}"
openssl pkey -in "$T/w/ct.key" -pubout -out "$T/other.pub" 2>/dev/null
refused4 "--key (a keyless bundle is not the key's)" kb:v1 "signed with a certificate, not a key" \
  --key "$T/other.pub" "${TR[@]}"
# usage errors: exit 2 before any registry access
usage4() {
  local desc=$1 why=$2; shift 2
  expect4 2 "$desc" kb:v1 "$@"
  check_true "... stderr: $why" "$(tail -2 "$T/err" | cut -c1-300)" grep -qF -- "$why" "$T/err"
}
usage4 "(identity without issuer)" "exactly one of --certificate-oidc-issuer and --certificate-oidc-issuer-regexp" \
  --certificate-identity "$EMAIL"
usage4 "(issuer without identity)" "exactly one of --certificate-identity and --certificate-identity-regexp" \
  --certificate-oidc-issuer "$ISSUER"
usage4 "(--key with --certificate-identity)" "exclude each other" --key "$T/x.pub" "${ID[@]}"
usage4 "(--policy with --certificate-identity)" "exclude each other" --policy "$T/pol/keyless.json" "${ID[@]}"
usage4 "(invalid regexp)" "--certificate-identity-regexp: not a valid regular expression" \
  --certificate-identity-regexp '(' --certificate-oidc-issuer "$ISSUER"
usage4 "(unreadable --trusted-root)" "$T/missing.json" "${ID[@]}" --trusted-root "$T/missing.json"

# ---------------------------------------------------------------- 5. podman through the gate
# podman pulls upstream.test/... through a registries.conf mirror at the proxy (private storage
# and configuration, as test_podman.sh); upstream.test is pinned to 127.0.0.1 (port 443 closed),
# so nothing can bypass the mirror
if command -v podman >/dev/null 2>&1; then
  podman_via_proxy "$P" upstream.test
  check "5. podman pull upstream.test/lab/kb:v1 through the gate (keyless v3 bundle)" "${PM[@]}" pull -q upstream.test/lab/kb:v1
  got=$("${PM[@]}" image inspect --format '{{range .RepoDigests}}{{println .}}{{end}}' upstream.test/lab/kb:v1 2>&1 | grep -v '^$')
  check_true "... podman has upstream.test/lab/kb@$D" "have: $got" grep -qx "upstream.test/lab/kb@$D" <<<"$got"
  for r in kbsub kbproof; do
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
