#!/usr/bin/env bash
# portcullis sign / verify / push against a real registry (distribution 2.8), with
# cosign-format interop checked by independent code (signer_interop.py: Python
# cryptography, from formats.md alone), openssl, umoci-built layouts and skopeo.
#   1. key round trips (P-256, Ed25519), re-signing, refusals, bad keys
#   2. a Python-made signature verifies with portcullis; a portcullis signature
#      verifies with Python and openssl
#   3. payload, config and .sig manifest bytes equal Go's json.Marshal of the same fields
#   4. one key signs once; a second key appends a layer
#   5. push of OCI layouts gives skopeo's digests; skopeo copies our .sig along
#   6. a registry with Basic auth: flags and docker config credentials
source "$(dirname "$0")/lib.sh"
suite_init signer
need umoci openssl cmp

SPY="$IT_DIR/signer_interop.py"
unset COSIGN_PASSWORD DOCKER_CONFIG
export PORTCULLIS_PASSWORD='it pass phrase'
export DOCKER_CONFIG="$T/no-docker-config"  # never the invoking user's credentials

pc() { "$PORTCULLIS_BIN" "$@"; }

# run CMD... : runs CMD with stdout in $T/out and stderr in $T/err; returns its status
run() { "$@" >"$T/out" 2>"$T/err"; }

# expect_exit CODE DESC CMD... : ok when CMD exits CODE (stdout $T/out, stderr $T/err)
expect_exit() {
  local want=$1 desc=$2 rc; shift 2
  run "$@"; rc=$?
  if [[ $rc == "$want" ]]; then ok "$desc"; return 0; fi
  not_ok "$desc" "exit $rc (want $want): $(tail -3 "$T/err")"; return 1
}

# err_has DESC TEXT : the last command's stderr mentions TEXT
err_has() { check_true "$1" "stderr: $(tail -2 "$T/err")" grep -qF -- "$2" "$T/err"; }

# sig_manifest HOSTPORT REPO DIGEST OUT : fetch the .sig manifest bytes of DIGEST
sig_manifest() {
  curl -fsS --max-time 60 -H "Accept: $ACCEPT_ALL" -o "$4" "http://$1/v2/$2/manifests/sha256-${3#sha256:}.sig"
}
# sig_layers HOSTPORT REPO DIGEST : number of layers under the .sig tag (0 when none)
sig_layers() {
  sig_manifest "$1" "$2" "$3" "$T/sl.json" 2>/dev/null || { echo 0; return; }
  jq '.layers | length' "$T/sl.json"
}
# get_blob HOSTPORT REPO DIGEST OUT
get_blob() { curl -fsS --max-time 120 -o "$4" "http://$1/v2/$2/blobs/$3"; }

# curl_push_blob HOSTPORT REPO FILE : monolithic POST + PUT, as a client independent of portcullis
curl_push_blob() {
  local d loc sep code
  d=sha256:$(sha256sum <"$3" | cut -d' ' -f1)
  loc=$(curl -sS --max-time 60 -X POST -D - -o /dev/null "http://$1/v2/$2/blobs/uploads/" |
        awk 'tolower($1)=="location:"{print $2}' | tr -d '\r')
  [[ -n $loc ]] || { echo "no Location" >&2; return 1; }
  [[ $loc == http* ]] || loc="http://$1$loc"
  sep='?'; [[ $loc == *\?* ]] && sep='&'
  code=$(curl -sS --max-time 60 -o /dev/null -w '%{http_code}' -X PUT -H 'Content-Type: application/octet-stream' \
         --data-binary @"$3" "$loc${sep}digest=$d")
  [[ $code == 201 ]] || { echo "PUT blob: HTTP $code" >&2; return 1; }
}

start_upstream reg || { not_ok "registry starts" "see $T/reg.log"; finish; }
R=${ADDR[reg]}
build_images || { not_ok "test images built" "see $T/build_images.log"; finish; }
for repo in lab/small lab/annot lab/pysig; do
  check "skopeo pushes the small image to $repo:v1" \
    sk copy -q --dest-tls-verify=false "oci:$IMG_OCI:small" "docker://$R/$repo:v1" || finish
done
D=$(manifest_digest "$R" lab/small v1) || { not_ok "digest of lab/small:v1"; finish; }
log "lab/small:v1 is $D"

# ---------------------------------------------------------------- 1 + 4. round trips
for type in ecdsa-p256 ed25519 other; do
  t=$type; [[ $type == other ]] && t=ecdsa-p256
  check "key generate --type $t ($type)" pc key generate --type "$t" --output-prefix "$T/$type"
done

expect_exit 0 "sign lab/small:v1 with a P-256 key" pc sign "$R/lab/small:v1" --key "$T/ecdsa-p256.key" --allow-http
check_true "sign prints the signed digest" "$(cat "$T/out")" grep -qF "$D" "$T/out"
check_eq "the .sig tag holds one layer" 1 "$(sig_layers "$R" lab/small "$D")"
expect_exit 0 "verify with the P-256 public key" pc verify "$R/lab/small:v1" --key "$T/ecdsa-p256.pub" --allow-http
check_true "verify prints the payloads as a JSON array naming the digest" "$(head -c 300 "$T/out")" \
  jq -e --arg d "$D" 'length == 1 and .[0].critical.image["docker-manifest-digest"] == $d' "$T/out"

expect_exit 0 "signing again with the same key succeeds" pc sign "$R/lab/small:v1" --key "$T/ecdsa-p256.key" --allow-http
check_true "... and says it was already signed" "$(cat "$T/out")" grep -q "already signed" "$T/out"
check_eq "... and keeps one layer" 1 "$(sig_layers "$R" lab/small "$D")"

expect_exit 0 "sign with an Ed25519 key (by digest, --json)" \
  pc sign "$R/lab/small@$D" --key "$T/ed25519.key" --allow-http --json
check_true "sign --json reports the added layer" "$(cat "$T/out")" \
  jq -e --arg d "$D" '.signed[0].digest == $d and .signed[0].layer_added == true and .signed[0].signature_layers == 2' "$T/out"
check_eq "a second key appends a second layer" 2 "$(sig_layers "$R" lab/small "$D")"
expect_exit 0 "verify with the Ed25519 public key" pc verify "$R/lab/small:v1" --key "$T/ed25519.pub" --allow-http
check_true "exactly one payload verifies with the Ed25519 key" "$(cat "$T/out")" jq -e 'length == 1' "$T/out"
expect_exit 0 "the P-256 signature still verifies" pc verify "$R/lab/small:v1" --key "$T/ecdsa-p256.pub" --allow-http

expect_exit 1 "verify with an unrelated key exits 1" pc verify "$R/lab/small:v1" --key "$T/other.pub" --allow-http
err_has "... saying none of the 2 signatures verifies" "none of the 2 signatures"
expect_exit 1 "verify --json with an unrelated key exits 1" \
  pc verify "$R/lab/small:v1" --key "$T/other.pub" --allow-http --json
check_true "... and reports 0 verified, 2 rejected" "$(cat "$T/out")" \
  jq -e '(.verified | length) == 0 and (.rejected | length) == 2' "$T/out"
expect_exit 1 "verify of an unsigned image exits 1" pc verify "$R/lab/annot:v1" --key "$T/ecdsa-p256.pub" --allow-http
err_has "... saying no signatures were found" "no signatures found"

expect_exit 2 "a wrong passphrase fails with exit 2" \
  env PORTCULLIS_PASSWORD=wrong "$PORTCULLIS_BIN" sign "$R/lab/small:v1" --key "$T/ecdsa-p256.key" --allow-http
err_has "... naming the problem" "wrong passphrase"
cp "$T/ecdsa-p256.key" "$T/tampered.key"
sed -i '3s/^\(....\)./\1_/' "$T/tampered.key"   # '_' is not base64: the body no longer decodes
expect_exit 2 "a tampered key file fails with exit 2" pc sign "$R/lab/small:v1" --key "$T/tampered.key" --allow-http
err_has "... naming the file" "tampered.key"
head -n 4 "$T/ecdsa-p256.key" >"$T/truncated.key"
expect_exit 2 "a truncated key file fails with exit 2" pc sign "$R/lab/small:v1" --key "$T/truncated.key" --allow-http
err_has "... naming the file" "truncated.key"
expect_exit 2 "signing over https against a plain-http registry fails" pc sign "$R/lab/small:v1" --key "$T/ecdsa-p256.key"
err_has "... and suggests --allow-http" "--allow-http"
expect_exit 2 "signing a tag that does not exist fails" pc sign "$R/lab/small:nope" --key "$T/ecdsa-p256.key" --allow-http
err_has "... saying so" "no manifest"
expect_exit 2 "a malformed annotation is refused" \
  pc sign "$R/lab/small:v1" --key "$T/ecdsa-p256.key" --allow-http -a novalue
check_eq "failed signings added no layer" 2 "$(sig_layers "$R" lab/small "$D")"

# ---------------------------------------------------------------- 2. independent code
mkdir -p "$T/py"
check "python makes a P-256 key pair" "$PY" "$SPY" keygen "$T/py"
"$PY" "$SPY" payload "$R/lab/pysig" "$D" >"$T/py/payload.json"
pysig=$("$PY" "$SPY" sign "$T/py/py.pem" "$T/py/payload.json")
check "python builds a cosign .sig image for its signature" "$PY" "$SPY" sigimage "$T/py/payload.json" "$pysig" "$T/py"
check "curl uploads the payload blob" curl_push_blob "$R" lab/pysig "$T/py/payload.json"
check "curl uploads the config blob" curl_push_blob "$R" lab/pysig "$T/py/config.json"
code=$(curl -sS --max-time 60 -o /dev/null -w '%{http_code}' -X PUT \
       -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' --data-binary @"$T/py/manifest.json" \
       "http://$R/v2/lab/pysig/manifests/sha256-${D#sha256:}.sig")
check_eq "curl puts the .sig manifest" 201 "$code"
expect_exit 0 "portcullis verify accepts the python-made signature" \
  pc verify "$R/lab/pysig:v1" --key "$T/py/py.pub" --allow-http
check_true "... and prints python's payload" "$(cat "$T/out")" \
  jq -e --arg r "$R/lab/pysig" '.[0].critical.identity["docker-reference"] == $r' "$T/out"
expect_exit 1 "... but not with another key" pc verify "$R/lab/pysig:v1" --key "$T/ecdsa-p256.pub" --allow-http
expect_exit 0 "portcullis appends its own signature to the python-made .sig" \
  pc sign "$R/lab/pysig:v1" --key "$T/ecdsa-p256.key" --allow-http
check_eq "... giving two layers" 2 "$(sig_layers "$R" lab/pysig "$D")"
expect_exit 0 "... and the python signature still verifies" pc verify "$R/lab/pysig:v1" --key "$T/py/py.pub" --allow-http
check_true "... the python layer is kept byte for byte" "layer 0 changed" \
  bash -c 'sig_m=$(curl -fsS -H "Accept: $0" "http://$1/v2/lab/pysig/manifests/sha256-${2#sha256:}.sig") &&
           [[ $(jq -c ".layers[0]" <<<"$sig_m") == $(jq -c ".layers[0]" "$3") ]]' \
  "$ACCEPT_ALL" "$R" "$D" "$T/py/manifest.json"

# The reverse: python and openssl verify the layer portcullis pushed for the P-256 key.
sig_manifest "$R" lab/small "$D" "$T/small-sig.json"
pd=$(jq -r '.layers[0].digest' "$T/small-sig.json")
psig=$(jq -r '.layers[0].annotations["dev.cosignproject.cosign/signature"]' "$T/small-sig.json")
check "the payload blob of portcullis' layer downloads" get_blob "$R" lab/small "$pd" "$T/small-payload.json"
check_eq "the payload blob matches its layer digest" "$pd" "sha256:$(sha256sum <"$T/small-payload.json" | cut -d' ' -f1)"
check "python verifies portcullis' ECDSA signature with the .pub file" \
  "$PY" "$SPY" verify "$T/ecdsa-p256.pub" "$T/small-payload.json" "$psig"
printf '%s' "$psig" | base64 -d >"$T/small-sig.der"
check "openssl dgst -sha256 -verify accepts it too" \
  openssl dgst -sha256 -verify "$T/ecdsa-p256.pub" -signature "$T/small-sig.der" "$T/small-payload.json"
check "python finds exactly cosign's payload shape naming the digest" \
  "$PY" "$SPY" check-payload "$T/small-payload.json" "$D"

# ---------------------------------------------------------------- 3. bytes equal Go's json.Marshal
"$PY" "$SPY" payload "$R/lab/small" "$D" >"$T/want-plain.json"
check "payload without annotations is byte-identical to Go's json.Marshal" cmp "$T/want-plain.json" "$T/small-payload.json"
ANN=("z=last" "a=first" 'note=<b>&"q"' "unicode=héllo wörld ✓" "tab=a	b" "sha=abc123")
aflags=(); for a in "${ANN[@]}"; do aflags+=(-a "$a"); done
expect_exit 0 "sign lab/annot:v1 with annotations" \
  pc sign "$R/lab/annot:v1" --key "$T/ecdsa-p256.key" --allow-http "${aflags[@]}"
sig_manifest "$R" lab/annot "$D" "$T/annot-sig.json"
ad=$(jq -r '.layers[0].digest' "$T/annot-sig.json")
asig=$(jq -r '.layers[0].annotations["dev.cosignproject.cosign/signature"]' "$T/annot-sig.json")
get_blob "$R" lab/annot "$ad" "$T/annot-payload.json"
"$PY" "$SPY" payload "$R/lab/annot" "$D" "${ANN[@]}" >"$T/want-annot.json"
check "payload with annotations is byte-identical to Go's json.Marshal (sorted, <>& escaped)" \
  cmp "$T/want-annot.json" "$T/annot-payload.json"
check_true "... and it escapes < > & as Go does" "$(cat "$T/annot-payload.json")" \
  grep -qF '\u003cb\u003e\u0026\"q\"' "$T/annot-payload.json"
mkdir -p "$T/annot-py"
"$PY" "$SPY" sigimage "$T/annot-payload.json" "$asig" "$T/annot-py"
check "the .sig manifest is byte-identical to go-containerregistry's for the same layer" \
  cmp "$T/annot-py/manifest.json" "$T/annot-sig.json"
get_blob "$R" lab/annot "$(jq -r '.config.digest' "$T/annot-sig.json")" "$T/annot-config.json"
check "the config blob is byte-identical to cosign's" cmp "$T/annot-py/config.json" "$T/annot-config.json"
expect_exit 0 "the annotated signature verifies" pc verify "$R/lab/annot:v1" --key "$T/ecdsa-p256.pub" --allow-http
check_true "... with its annotations in optional" "$(cat "$T/out")" \
  jq -e '.[0].optional.note == "<b>&\"q\"" and .[0].optional.a == "first"' "$T/out"

# ---------------------------------------------------------------- 5. push
LAY=$T/lay
mkdir -p "$T/lay-src/etc"
printf 'pushed by portcullis\n' >"$T/lay-src/etc/motd"
if umoci init --layout "$LAY" >"$T/umoci.log" 2>&1 &&
   umoci new --image "$LAY:t" >>"$T/umoci.log" 2>&1 &&
   umoci insert --image "$LAY:t" --history.created 1970-01-01T00:00:00Z "$T/lay-src" / >>"$T/umoci.log" 2>&1 &&
   umoci config --image "$LAY:t" --created 1970-01-01T00:00:00Z --history.created 1970-01-01T00:00:00Z \
     --os linux --architecture amd64 --config.cmd /bin/true >>"$T/umoci.log" 2>&1 &&
   umoci tag --image "$LAY:t" t2 >>"$T/umoci.log" 2>&1; then
  ok "umoci builds a layout with refs t and t2"
else
  not_ok "umoci builds a layout with refs t and t2" "$(tail -3 "$T/umoci.log")"
fi
LD=$(jq -r '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"]=="t") | .digest' "$LAY/index.json")

expect_exit 0 "push OCI_LAYOUT:t" pc push "$LAY:t" "$R/push/umoci:t" --allow-http
check_true "push prints the digest" "$(cat "$T/out")" grep -qF "$LD" "$T/out"
check "skopeo copy of the same layout" sk copy -q --dest-tls-verify=false "oci:$LAY:t" "docker://$R/skopeo/umoci:t"
pd1=$(manifest_digest "$R" push/umoci t 2>&1); sd1=$(manifest_digest "$R" skopeo/umoci t 2>&1)
check_eq "pushed manifest digest equals skopeo's" "$sd1" "$pd1"
check_eq "... and the layout's" "$LD" "$pd1"
expect_exit 0 "pushing again succeeds" pc push "$LAY:t" "$R/push/umoci:t" --allow-http --json
check_true "... uploading no blob" "$(cat "$T/out")" jq -e '.blobs_uploaded == 0 and .blobs_skipped == 2' "$T/out"
expect_exit 2 "push of a layout with two refs and no :REF is refused" pc push "$LAY" "$R/push/umoci:x" --allow-http
err_has "... asking to choose" "choose one"
expect_exit 2 "push of an unknown ref is refused" pc push "$LAY:nope" "$R/push/umoci:x" --allow-http
err_has "... naming the refs" "refs: "

BD=$(jq -r '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"]=="big") | .digest' "$IMG_OCI/index.json")
expect_exit 0 "push the big image (200 MiB layer: chunked upload)" pc push "$IMG_OCI:big" "$R/push/big:v1" --allow-http
check "skopeo copy of the big image" sk copy -q --dest-tls-verify=false "oci:$IMG_OCI:big" "docker://$R/skopeo/big:v1"
pbd=$(manifest_digest "$R" push/big v1 2>&1)
check_eq "big: pushed digest equals skopeo's" "$(manifest_digest "$R" skopeo/big v1 2>&1)" "$pbd"
check_eq "big: ... and the layout's" "$BD" "$pbd"
bl=$(largest_layer "$R" push/big v1)
check_eq "big: the 200 MiB layer reads back with its digest" "$bl" \
  "sha256:$(curl -fsS --max-time 300 "http://$R/v2/push/big/blobs/$bl" | sha256sum | cut -d' ' -f1)"

MD=$(jq -r '.manifests[0].digest' "$IMG_MULTI/index.json")
expect_exit 0 "push a multi-platform index" pc push "$IMG_MULTI:v1" "$R/push/multi:v1" --allow-http
check_eq "index digest equals the layout's" "$MD" "$(manifest_digest "$R" push/multi v1 2>&1)"
nchild=0
for c in $(jq -r '.manifests[].digest' "$IMG_MULTI/blobs/sha256/${MD#sha256:}"); do
  [[ $(manifest_digest "$R" push/multi "$c" 2>/dev/null) == "$c" ]] && nchild=$((nchild + 1))
done
check_eq "both platform manifests were pushed" 2 "$nchild"
expect_exit 0 "sign --recursive signs the index and its children" \
  pc sign "$R/push/multi:v1" --key "$T/ecdsa-p256.key" --allow-http --recursive --json
check_true "... three digests signed" "$(cat "$T/out")" jq -e '.signed | length == 3' "$T/out"
c0=$(jq -r '.manifests[0].digest' "$IMG_MULTI/blobs/sha256/${MD#sha256:}")
expect_exit 0 "a child manifest verifies by digest" pc verify "$R/push/multi@$c0" --key "$T/ecdsa-p256.pub" --allow-http

expect_exit 0 "push --sign pushes and signs" \
  pc push "$LAY:t" "$R/push/signed:t" --sign --key "$T/ecdsa-p256.key" --allow-http --json
check_true "... reporting the signed digest" "$(cat "$T/out")" \
  jq -e --arg d "$LD" '.digest == $d and .signed[0].digest == $d and .signed[0].layer_added' "$T/out"
expect_exit 0 "the pushed image verifies" pc verify "$R/push/signed:t" --key "$T/ecdsa-p256.pub" --allow-http

mkdir -p "$T/registries.d"
printf 'docker:\n  %s:\n    use-sigstore-attachments: true\n' "$R" >"$T/registries.d/local.yaml"
check "skopeo copy with use-sigstore-attachments copies the image" \
  sk --registries.d "$T/registries.d" copy -q --src-tls-verify=false --dest-tls-verify=false \
  "docker://$R/push/signed:t" "docker://$R/copy/signed:t"
check_eq "... and our .sig tag along with it" 200 \
  "$(http_status GET "http://$R/v2/copy/signed/manifests/sha256-${LD#sha256:}.sig" -H "Accept: $ACCEPT_ALL")"
check "(control) skopeo copy without that registries.d setting" \
  sk copy -q --src-tls-verify=false --dest-tls-verify=false "docker://$R/push/signed:t" "docker://$R/copy-plain/signed:t"
check_eq "(control) ... leaves the .sig tag behind" 404 \
  "$(http_status GET "http://$R/v2/copy-plain/signed/manifests/sha256-${LD#sha256:}.sig" -H "Accept: $ACCEPT_ALL")"
expect_exit 0 "the copied signature verifies in the new repository" \
  pc verify "$R/copy/signed:t" --key "$T/ecdsa-p256.pub" --allow-http

# ---------------------------------------------------------------- 6. Basic auth
AP=$(free_port)
mkdir -p "$T/authreg-data"
"$PY" -c 'import crypt,sys; print("alice:" + crypt.crypt(sys.argv[1], crypt.mksalt(crypt.METHOD_BLOWFISH)))' \
  's3cret pw' >"$T/htpasswd" 2>/dev/null
cat >"$T/authreg.yml" <<YML
version: 0.1
log: {level: info}
storage:
  filesystem: {rootdirectory: $T/authreg-data}
  delete: {enabled: true}
auth:
  htpasswd: {realm: portcullis-it, path: $T/htpasswd}
http:
  addr: 127.0.0.1:$AP
YML
if start_bg authreg docker-registry serve "$T/authreg.yml" && wait_http "http://127.0.0.1:$AP/v2/" 30 authreg; then
  A=127.0.0.1:$AP
  printf 's3cret pw\n' >"$T/regpass"
  expect_exit 2 "push to a Basic-auth registry without credentials fails" pc push "$LAY:t" "$A/auth/img:t" --allow-http
  err_has "... as unauthorized" "401"
  expect_exit 0 "push with --registry-username/--registry-password-file" \
    pc push "$LAY:t" "$A/auth/img:t" --allow-http --registry-username alice --registry-password-file "$T/regpass"
  expect_exit 0 "sign with --registry-username/--registry-password-file" \
    pc sign "$A/auth/img:t" --key "$T/ecdsa-p256.key" --allow-http --registry-username alice \
    --registry-password-file "$T/regpass"
  mkdir -p "$T/docker-config"
  printf '{"auths":{"%s":{"auth":"%s"}}}\n' "$A" "$(printf 'alice:s3cret pw' | base64 -w0)" >"$T/docker-config/config.json"
  expect_exit 0 "verify with credentials from DOCKER_CONFIG/config.json" \
    env DOCKER_CONFIG="$T/docker-config" "$PORTCULLIS_BIN" verify "$A/auth/img:t" --key "$T/ecdsa-p256.pub" --allow-http
  expect_exit 2 "a wrong password is refused" \
    pc verify "$A/auth/img:t" --key "$T/ecdsa-p256.pub" --allow-http --registry-username alice \
    --registry-password-file "$T/htpasswd"
else
  not_ok "registry with Basic auth starts" "$(tail -3 "$T/authreg.log")"
fi

finish
