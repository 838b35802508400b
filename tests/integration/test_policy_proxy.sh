#!/usr/bin/env bash
# The trust-policy gate of the proxy (serve --policy), driven by real clients (skopeo direct
# and as a registries.conf mirror, podman with a path-prefix mirror, dockerd registry-mirrors)
# against a real docker-registry upstream (distribution 2.8, no referrers API):
#   1. signed images pull (skopeo, podman, dockerd with docker.io names)
#   2. unsigned -> 403 DENIED; the client says so; the decision line says why
#   3. signed by an untrusted key -> refused
#   4. a .sig copied from another digest -> refused ("signature is for ..., not ...")
#   5. 2-of-2 keys: refused with one signature, served once the second key signed (--verdict-ttl 1)
#  5b. an accepted verdict expires too: a signature deleted upstream -> refused after --verdict-ttl
#   6. a warn-mode rule serves an unsigned image and logs verdict warn
#   7. multi-arch index signed (--recursive, and index only): podman --arch arm64, skopeo copy --all
#   8. blobs of a refused image -> 403 DENIED (the gate is per repository)
#   9. a tag moved upstream to an unsigned digest is refused once --tag-ttl passed
#  10. a cosign referrer listed in the sha256-<hex> fallback tag (no .sig tag) is found
#  11. containers-policy.json (sigstoreSigned, default reject): matchRepository with python-made
#      signatures naming upstream.test/lab/... (portcullis sign against 127.0.0.1:PORT writes that
#      address as the identity, which matchRepository rightly refuses: checked too), and
#      exactRepository scopes for portcullis-made signatures
#  12. a signature made by independent code (python3-cryptography) verifies
#  13. broken policies: serve refuses to start (exit 2); SIGHUP with a broken policy keeps the
#      old one and logs the failure; SIGHUP with a fixed one takes effect
#  14. admin API: POST /api/v1/policy/reload (broken -> error, old kept), GET /api/v1/policy/test
source "$(dirname "$0")/lib.sh"
suite_init policy_proxy
need podman openssl base64
need_dockerd
signing_env 'policy proxy it pass'

# ---------------------------------------------------------------- registry helpers
# push_small REPO:TAG [v2s2] : the small test image into the upstream (OCI, or Docker v2s2)
push_small() {
  local fmt=()
  [[ ${2:-} == v2s2 ]] && fmt=(--format v2s2)
  sk copy -q --dest-tls-verify=false "${fmt[@]}" "oci:$IMG_OCI:small" "docker://$UP/$1"
}
push_multi() { sk copy -q --all --dest-tls-verify=false "oci:$IMG_MULTI:v1" "docker://$UP/$1"; }
# sign REPO:TAG KEYNAME [flags] : portcullis sign against the upstream directly
sign() { local ref=$1 k=$2; shift 2; pc sign "$UP/$ref" --key "$T/$k.key" --allow-http "$@"; }

# ---------------------------------------------------------------- decision log helpers
# mark LOGNAME : current line count of $T/LOGNAME.log (decisions after it are "new")
mark() { wc -l <"$T/$1.log"; }
# decision_since LOGNAME MARK IMAGE : the last "policy decision" JSON line for IMAGE after MARK
decision_since() {
  tail -n +"$(($2 + 1))" "$T/$1.log" | grep -F '"msg":"policy decision"' |
    jq -cR --arg i "$3" 'fromjson? | select(.image == $i)' 2>/dev/null | tail -1
}
# check_decision DESC LOGNAME MARK IMAGE JQ-EXPR [jq args...]
# (log lines reach the file a few milliseconds after the answer: polls for up to 5 s)
check_decision() {
  local desc=$1 logn=$2 m=$3 img=$4 expr=$5 line i; shift 5
  for i in $(seq 25); do
    line=$(decision_since "$logn" "$m" "$img")
    if [[ -n $line ]] && jq -e "$@" "$expr" <<<"$line" >/dev/null 2>&1; then ok "$desc"; return 0; fi
    sleep 0.2
  done
  not_ok "$desc" "decision line for $img: ${line:-<none>}"; return 1
}
# wait_log LOGNAME MARK FIXED-STRING [SECONDS] : until a line after MARK contains the string
wait_log() {
  local i
  for i in $(seq $((${4:-10} * 5))); do
    tail -n +"$(($2 + 1))" "$T/$1.log" | grep -qF -- "$3" && return 0
    sleep 0.2
  done
  return 1
}

# ---------------------------------------------------------------- client wrappers
N=0
# skd PROXYNAME REF : skopeo copy docker://PROXY/REF -> a fresh oci: layout (direct)
skd() { N=$((N + 1)); sk copy -q --src-tls-verify=false "${@:3}" "docker://${ADDR[$1]}/$2" "oci:$T/out/$N:x"; }
# skm REF : skopeo copy docker://upstream.test/REF via the registries.conf mirror of proxy pp
skm() { N=$((N + 1)); timeout 600 skopeo --registries-conf "$MIRROR_CONF" copy -q "${@:2}" "docker://upstream.test/$1" "oci:$T/out/$N:x"; }
mkdir -p "$T/out"

# expect_served DESC LOGNAME IMAGE JQ-EXPR CMD... : CMD succeeds and the new decision for IMAGE
# satisfies JQ-EXPR (every pull of an image gets one, also from the verdict cache; JQ-EXPR "-":
# no decision check)
expect_served() {
  local desc=$1 logn=$2 img=$3 expr=$4 m; shift 4
  m=$(mark "$logn")
  check "$desc" "$@" || return 1
  [[ $expr == - ]] && return 0
  check_decision "... decision for $img: $expr" "$logn" "$m" "$img" "$expr"
}
# expect_refused DESC LOGNAME IMAGE REASON-SUBSTRING CMD... : CMD fails, its output mentions the
# denial, and the new decision line for IMAGE is a reject whose reason contains REASON-SUBSTRING
expect_refused() {
  local desc=$1 logn=$2 img=$3 why=$4 m; shift 4
  m=$(mark "$logn")
  if "$@" >"$T/cli.out" 2>&1; then
    not_ok "$desc: refused" "the pull succeeded"
  else
    ok "$desc: refused"
    log "client said: $(grep -v '^$' "$T/cli.out" | tail -1 | cut -c1-400)"
    check_true "... the client's error output mentions the denial" "$(grep -v '^$' "$T/cli.out" | tail -2)" \
      grep -qiE 'denied|403' "$T/cli.out"
  fi
  check_decision "... decision for $img: reject, reason contains \"$why\"" "$logn" "$m" "$img" \
    '.verdict == "reject" and (.reason | contains($w))' --arg w "$why"
}

# ================================================================ setup
start_upstream upstream || { not_ok "upstream registry starts" "see $T/upstream.log"; finish; }
UP=${ADDR[upstream]}
build_images || { not_ok "test images built" "see $T/build_images.log"; finish; }

gen_keys a b c || finish
mkdir -p "$T/py" "$T/py2"
check "python makes two P-256 key pairs (independent signer)" \
  bash -c '"$1" "$2" keygen "$3" && "$1" "$2" keygen "$4"' _ "$PY" "$SPY" "$T/py" "$T/py2" || finish
cp "$T/py/py.pub" "$T/pol/keys/"

ok_push=1
for r in lab/small lab/unsigned lab/untrusted lab/k2 lab/warn lab/moving lab/ref lab/pysig lab/copied lab/cps lab/cpu lab/revoke; do
  push_small "$r:v1" || ok_push=0
done
push_small lab/copied:a v2s2 || ok_push=0        # another digest in the same repository
for r in lab/multi lab/multi-idx lab/multi-nosig; do push_multi "$r:v1" || ok_push=0; done
push_small library/hello:latest v2s2 || ok_push=0
push_small library/nosig:latest v2s2 || ok_push=0
if ((ok_push)); then ok "test images pushed into the upstream"; else not_ok "test images pushed into the upstream" "skopeo copy failed"; finish; fi
D=$(manifest_digest "$UP" lab/small v1) || { not_ok "digest of lab/small:v1"; finish; }
D2=$(manifest_digest "$UP" lab/copied a) || { not_ok "digest of lab/copied:a"; finish; }
MI=$(manifest_digest "$UP" lab/multi v1) || { not_ok "digest of lab/multi:v1"; finish; }
HD=$(manifest_digest "$UP" library/hello latest) || { not_ok "digest of library/hello:latest"; finish; }
log "small (OCI) $D, small (v2s2) $D2, multi $MI"

ok_sign=1
for r in lab/small lab/moving lab/k2 lab/revoke; do sign "$r:v1" a >/dev/null || ok_sign=0; done
sign lab/untrusted:v1 c >/dev/null || ok_sign=0
sign lab/copied:a a >/dev/null || ok_sign=0
sign lab/multi:v1 a --recursive >/dev/null || ok_sign=0
sign lab/multi-idx:v1 a >/dev/null || ok_sign=0
sign library/hello:latest a >/dev/null || ok_sign=0
if ((ok_sign)); then ok "portcullis signs the test images in the upstream"; else not_ok "portcullis signs the test images in the upstream" "a sign failed"; fi

# 4. the .sig of lab/copied:a (digest D2) copied to the .sig tag of lab/copied:v1 (digest D)
get_manifest "$UP" lab/copied "sha256-${D2#sha256:}.sig" "$T/copied-sig.json" &&
check "the .sig manifest of lab/copied:a ($D2) is PUT under the .sig tag of lab/copied:v1 (curl)" \
  put_manifest "$UP" lab/copied "sha256-${D#sha256:}.sig" "$T/copied-sig.json" "application/vnd.oci.image.manifest.v1+json"

# py_sig REPO IDENTITY KEYDIR : python (signer_interop.py) signs the small image's digest in REPO
# with KEYDIR/py.pem and identity IDENTITY; curl uploads the cosign .sig image
py_sig() {
  local w=$T/pysig-${1//\//-}
  mkdir -p "$w"
  "$PY" "$SPY" payload "$2" "$D" >"$w/payload.json" &&
  "$PY" "$SPY" sigimage "$w/payload.json" "$("$PY" "$SPY" sign "$3/py.pem" "$w/payload.json")" "$w" &&
  curl_push_blob "$UP" "$1" "$w/payload.json" && curl_push_blob "$UP" "$1" "$w/config.json" &&
  put_manifest "$UP" "$1" "sha256-${D#sha256:}.sig" "$w/manifest.json" "application/vnd.oci.image.manifest.v1+json"
}
# 12. python-made .sig for lab/pysig (identity as `portcullis sign` writes it: the upstream's address)
check "python signs lab/pysig:v1 (identity $UP/lab/pysig); curl uploads the .sig image" \
  py_sig lab/pysig "$UP/lab/pysig" "$T/py"
# 11. python-made signatures with the proxy's canonical identity, for matchRepository
check "python signs lab/cps:v1 (identity upstream.test/lab/cps, key py)" py_sig lab/cps upstream.test/lab/cps "$T/py"
check "python signs lab/cpu:v1 (identity upstream.test/lab/cpu, key py2: untrusted)" py_sig lab/cpu upstream.test/lab/cpu "$T/py2"

# 10. cosign-style referrer (python-signed) in the fallback tag sha256-<hex> of lab/ref, no .sig tag
msize=$(curl -fsS --max-time 60 -H "Accept: $ACCEPT_ALL" "http://$UP/v2/lab/ref/manifests/v1" | wc -c)
cosign_referrer "$T/py" "upstream.test/lab/ref" "$D" "$msize"
if curl_push_blob "$UP" lab/ref "$T/py/ref-payload.json" && curl_push_blob "$UP" lab/ref "$T/py/empty.json" &&
   put_manifest "$UP" lab/ref "$RD" "$T/py/referrer.json" "application/vnd.oci.image.manifest.v1+json" &&
   put_manifest "$UP" lab/ref "sha256-${D#sha256:}" "$T/py/fallback-index.json" "application/vnd.oci.image.index.v1+json"; then
  ok "a cosign referrer of lab/ref:v1 and the fallback index sha256-<hex> are in the upstream"
else not_ok "a cosign referrer of lab/ref:v1 and the fallback index sha256-<hex> are in the upstream" "see above"; fi
check_eq "(the upstream has no referrers API: 404)" 404 \
  "$(http_status GET "http://$UP/v2/lab/ref/referrers/$D" -H 'Accept: application/vnd.oci.image.index.v1+json')"
check_eq "(lab/ref has no .sig tag)" 404 \
  "$(http_status GET "http://$UP/v2/lab/ref/manifests/sha256-${D#sha256:}.sig" -H "Accept: $ACCEPT_ALL")"

# ---------------------------------------------------------------- policies
# pp_policy FILE [EXTRA-RULE-JSON] : the main Portcullis policy
pp_policy() {
  cat >"$1" <<JSON
{"keys":{"a":{"path":"keys/a.pub"},"b":{"path":"keys/b.pub"},"py":{"path":"keys/py.pub"}},
 "rules":[{"match":"upstream.test/lab/**","require":{"keys":["a"]}},
          {"match":"upstream.test/lab/k2","require":{"keys":["a","b"],"threshold":2}},
          {"match":"upstream.test/lab/warn","require":{"keys":["a"]},"mode":"warn"},
          {"match":"upstream.test/lab/ref","require":{"keys":["py"]}},
          {"match":"upstream.test/lab/pysig","require":{"keys":["py"]}},
          {"match":"docker.io/library/hello","require":{"keys":["a"]}}${2:+,$2}],
 "default":"reject"}
JSON
}
pp_policy "$T/pol/pp.json"
cp "$T/pol/pp.json" "$T/pol/pp-orig.json"
pp_policy "$T/pol/pd.json"
# containers-policy.json. `portcullis sign` against the upstream writes the identity
# 127.0.0.1:UP/lab/REPO, which matchRepository (correctly) refuses for upstream.test/lab/REPO:
# the python-made signatures carry upstream.test/lab/...; portcullis-made ones are checked
# with exactRepository scopes.
cat >"$T/pol/cp.json" <<JSON
{"default":[{"type":"reject"}],
 "transports":{"docker":{
   "upstream.test/lab":[{"type":"sigstoreSigned","keyPath":"keys/py.pub","signedIdentity":{"type":"matchRepository"}}],
   "upstream.test/lab/small":[{"type":"sigstoreSigned","keyPath":"keys/a.pub","signedIdentity":{"type":"exactRepository","dockerRepository":"$UP/lab/small"}}],
   "upstream.test/lab/untrusted":[{"type":"sigstoreSigned","keyPath":"keys/a.pub","signedIdentity":{"type":"exactRepository","dockerRepository":"$UP/lab/untrusted"}}],
   "upstream.test/lab/copied":[{"type":"sigstoreSigned","keyPath":"keys/a.pub","signedIdentity":{"type":"exactRepository","dockerRepository":"$UP/lab/copied"}}],
   "upstream.test/lab/multi":[{"type":"sigstoreSigned","keyPath":"keys/a.pub","signedIdentity":{"type":"exactRepository","dockerRepository":"$UP/lab/multi"}}]
 }}}
JSON

TOKEN=$(openssl rand -hex 24)
printf '%s\n' "$TOKEN" >"$T/admin.token"
chmod 600 "$T/admin.token"
ADMIN_PORT=$(free_port)
A=127.0.0.1:$ADMIN_PORT

start_proxy pp --upstream "upstream.test=http://$UP" --policy "$T/pol/pp.json" --verdict-ttl 1 --tag-ttl 2 \
  --admin-listen "$A" --admin-token-file "$T/admin.token" ||
  { not_ok "proxy (Portcullis policy) starts" "$(tail -3 "$T/pp.log")"; finish; }
ok "proxy (Portcullis policy, --verdict-ttl 1 --tag-ttl 2) starts"
P=${ADDR[pp]}
check_true "... and logs the loaded policy" "$(tail -3 "$T/pp.log")" grep -qF '"msg":"trust policy loaded"' "$T/pp.log"
PP_VERSION=$(grep -F '"msg":"trust policy loaded"' "$T/pp.log" | jq -r .version | tail -1)

hosts_pin upstream.test
MIRROR_CONF=$T/registries-mirror.conf
cat >"$MIRROR_CONF" <<EOF
unqualified-search-registries = []
short-name-mode = "disabled"

[[registry]]
prefix = "upstream.test"
location = "upstream.test"
[[registry.mirror]]
location = "$P/upstream.test"
insecure = true
EOF

# podman: private storage and configuration, as test_podman.sh
export CONTAINERS_REGISTRIES_CONF=$MIRROR_CONF
export CONTAINERS_STORAGE_CONF=$T/storage.conf
printf '[storage]\ndriver = "vfs"\nrunroot = "%s"\ngraphroot = "%s"\n' "$T/podman-run" "$T/podman-root" >"$CONTAINERS_STORAGE_CONF"
export XDG_RUNTIME_DIR=$T/xdg HOME=$T/home
mkdir -p "$XDG_RUNTIME_DIR" "$HOME"
chmod 700 "$XDG_RUNTIME_DIR"
PM=(timeout 600 podman --root "$T/podman-root" --runroot "$T/podman-run" --storage-driver vfs
    --cgroup-manager cgroupfs --events-backend none --tmpdir "$T/podman-tmp")

# ================================================================ 1. signed images pull
ACC='.verdict == "accept"'
expect_served "1. skopeo copy docker://PROXY/lab/small:v1 (signed by a; direct)" pp upstream.test/lab/small:v1 \
  "$ACC"' and .rule == "upstream.test/lab/**" and .keys == ["a"]' skd pp lab/small:v1
expect_served "1. skopeo copy docker://upstream.test/lab/small:v1 via the registries.conf mirror" pp upstream.test/lab/small:v1 \
  "$ACC" skm lab/small:v1
expect_served "1. podman pull upstream.test/lab/small:v1 via the mirror (path prefix)" pp upstream.test/lab/small:v1 \
  "$ACC" "${PM[@]}" pull -q upstream.test/lab/small:v1
got=$("${PM[@]}" image inspect --format '{{range .RepoDigests}}{{println .}}{{end}}' upstream.test/lab/small:v1 2>&1 | grep -v '^$')
check_true "... podman has upstream.test/lab/small@$D" "have: $got" grep -qx "upstream.test/lab/small@$D" <<<"$got"
check_true "... the requests came through the mirror path /v2/upstream.test/lab/small" "no such path in pp.log" \
  grep -qF '"path":"/v2/upstream.test/lab/small/manifests/' "$T/pp.log"
code=$(http_status GET "http://$P/v2/lab/small/manifests/sha256-${D#sha256:}.sig" -H "Accept: $ACCEPT_ALL")
check_eq "1. the .sig tag itself is served through the proxy (clients that verify find it)" 200 "$code"

# ================================================================ 2. unsigned
expect_refused "2. skopeo copy (direct) of unsigned lab/unsigned:v1" pp upstream.test/lab/unsigned:v1 \
  "no signature by a trusted key" skd pp lab/unsigned:v1
check_true "... skopeo shows the proxy's message \"refused by the trust policy: rule upstream.test/lab/**: ...\"" \
  "$(grep -v '^$' "$T/cli.out" | tail -1)" grep -qF "refused by the trust policy: rule upstream.test/lab/**: no signature by a trusted key" "$T/cli.out"
code=$(curl -s --max-time 30 -o "$T/body" -w '%{http_code}' -H "Accept: $ACCEPT_ALL" "http://$P/v2/lab/unsigned/manifests/v1")
check_true "2. GET manifest of lab/unsigned:v1: 403 with OCI code DENIED" "HTTP $code $(head -c 300 "$T/body")" \
  jq -e '.errors[0].code == "DENIED" and (.errors[0].message | startswith("refused by the trust policy: rule upstream.test/lab/**: no signature by a trusted key"))' "$T/body"
check_eq "2. ... with status 403" 403 "$code"
expect_refused "2. skopeo copy of unsigned lab/unsigned:v1 via the mirror" pp upstream.test/lab/unsigned:v1 \
  "no signature by a trusted key" skm lab/unsigned:v1
expect_refused "2. podman pull of unsigned upstream.test/lab/unsigned:v1 via the mirror" pp upstream.test/lab/unsigned:v1 \
  "no signature by a trusted key" "${PM[@]}" pull -q upstream.test/lab/unsigned:v1
expect_refused "2. skopeo copy of an unsigned multi-arch index (--all)" pp upstream.test/lab/multi-nosig:v1 \
  "no signature by a trusted key" skd pp lab/multi-nosig:v1 --all
expect_refused "2. an image no rule matches (upstream.test/library/nosig) falls to the default (reject)" pp \
  upstream.test/library/nosig:latest "no rule matches" skd pp library/nosig:latest

# ================================================================ 3. untrusted key
expect_refused "3. skopeo copy of lab/untrusted:v1 (signed by key c, not trusted)" pp upstream.test/lab/untrusted:v1 \
  "no signature by a trusted key" skd pp lab/untrusted:v1
check_decision "... the reason says a signature was found but by none of the trusted keys" pp 0 upstream.test/lab/untrusted:v1 \
  '.reason | test("1 signatures? found, none by a")'
expect_refused "3. podman pull of upstream.test/lab/untrusted:v1" pp upstream.test/lab/untrusted:v1 \
  "no signature by a trusted key" "${PM[@]}" pull -q upstream.test/lab/untrusted:v1

# ================================================================ 4. copied .sig
expect_refused "4. skopeo copy of lab/copied:v1 whose .sig was copied from another digest" pp upstream.test/lab/copied:v1 \
  "signature is for $D2, not $D" skd pp lab/copied:v1
expect_served "4. (control) lab/copied:a, the digest that signature is for, is served" pp upstream.test/lab/copied:a \
  "$ACC" skd pp lab/copied:a

# ================================================================ 5. 2 of 2
expect_refused "5. lab/k2:v1 (rule 2 of a,b) signed by a only" pp upstream.test/lab/k2:v1 \
  "2 of 2 keys required, 1 found (a)" skd pp lab/k2:v1
check "5. key b signs lab/k2:v1 in the upstream" sign lab/k2:v1 b
sleep 2   # --verdict-ttl 1: the cached refusal expires
expect_served "5. lab/k2:v1 is served once b signed too (after the verdict TTL)" pp upstream.test/lab/k2:v1 \
  "$ACC"' and .reason == "2 of 2 keys required, 2 found (a, b)" and .keys == ["a","b"]' skd pp lab/k2:v1
expect_served "5. podman pull upstream.test/lab/k2:v1" pp upstream.test/lab/k2:v1 "$ACC" \
  "${PM[@]}" pull -q upstream.test/lab/k2:v1

# ---------------------------------------------------------------- 5b. an accepted verdict expires too
# README: verdicts are cached for --verdict-ttl. Delete lab/revoke's .sig upstream after a
# successful pull: once the TTL has passed the digest must be evaluated again and refused.
expect_served "5b. lab/revoke:v1 (signed by a) is served" pp upstream.test/lab/revoke:v1 "$ACC" skd pp lab/revoke:v1
sigd=$(manifest_digest "$UP" lab/revoke "sha256-${D#sha256:}.sig")
check_eq "5b. its .sig manifest is deleted upstream (DELETE by digest: 202)" 202 \
  "$(http_status DELETE "http://$UP/v2/lab/revoke/manifests/$sigd")"
sleep 2   # --verdict-ttl 1
expect_refused "5b. after the verdict TTL, lab/revoke:v1 (no signature any more) is refused" pp upstream.test/lab/revoke:v1 \
  "no signature by a trusted key" skd pp lab/revoke:v1

# ================================================================ 6. warn mode
expect_served "6. unsigned lab/warn:v1 under a warn-mode rule is served (skopeo)" pp upstream.test/lab/warn:v1 \
  '.verdict == "warn" and .rule == "upstream.test/lab/warn" and (.reason | contains("no signature by a trusted key"))' \
  skd pp lab/warn:v1
check_decision "... logged at level warn" pp 0 upstream.test/lab/warn:v1 '.level == "warn"'
expect_served "6. podman pull upstream.test/lab/warn:v1 (warn)" pp upstream.test/lab/warn:v1 '.verdict == "warn"' \
  "${PM[@]}" pull -q upstream.test/lab/warn:v1

# ================================================================ 7. multi-arch
expect_served "7. podman pull --arch arm64 upstream.test/lab/multi:v1 (signed --recursive)" pp upstream.test/lab/multi:v1 \
  "$ACC and .digest == \"$MI\"" "${PM[@]}" pull -q --arch arm64 upstream.test/lab/multi:v1
arch=$("${PM[@]}" image inspect --format '{{.Architecture}}' upstream.test/lab/multi:v1 2>&1)
check_eq "... the arm64 variant" arm64 "$arch"
check "7. skopeo copy --all docker://PROXY/lab/multi:v1" skd pp lab/multi:v1 --all
archs=$(jq -r '.manifests[0].digest' "$T/out/$N/index.json" 2>/dev/null | sed 's/sha256://' |
  { read -r h; jq -r '.manifests[].platform.architecture' "$T/out/$N/blobs/sha256/$h" 2>/dev/null; } | sort | tr '\n' ' ')
check_eq "... both platforms" "amd64 arm64 " "$archs"
check "7. skopeo copy --all of lab/multi-idx:v1 (only the index signed: it covers its children)" \
  skd pp lab/multi-idx:v1 --all
check "7. podman pull --arch arm64 upstream.test/lab/multi-idx:v1 (index only signed)" \
  "${PM[@]}" pull -q --arch arm64 upstream.test/lab/multi-idx:v1

# ================================================================ 8. blobs of a refused image
LAYER=$(largest_layer "$UP" lab/unsigned v1)
CFG=$(curl -fsS --max-time 30 -H "Accept: $ACCEPT_ALL" "http://$UP/v2/lab/unsigned/manifests/v1" | jq -r .config.digest)
for b in "$LAYER" "$CFG"; do
  code=$(curl -s --max-time 30 -o "$T/body" -w '%{http_code}' "http://$P/v2/lab/unsigned/blobs/$b")
  check_true "8. GET blob $b of refused lab/unsigned: 403 DENIED" "HTTP $code $(head -c 300 "$T/body")" \
    test "$code" = 403 -a "$(jq -r '.errors[0].code' "$T/body" 2>/dev/null)" = DENIED
done
code=$(curl -s --max-time 30 -o /dev/null -w '%{http_code}' -I "http://$P/v2/lab/unsigned/blobs/$LAYER")
check_eq "8. HEAD of that blob: 403" 403 "$code"
code=$(curl -s --max-time 30 -o "$T/body" -w '%{http_code}' -H "Accept: $ACCEPT_ALL" "http://$P/v2/lab/unsigned/manifests/$D")
check_true "8. GET manifest of lab/unsigned by digest: 403 DENIED" "HTTP $code $(head -c 300 "$T/body")" \
  test "$code" = 403 -a "$(jq -r '.errors[0].code' "$T/body" 2>/dev/null)" = DENIED
# the same bytes are served in lab/small (its manifest passed there)
code=$(curl -s --max-time 30 -o "$T/blob" -w '%{http_code}' "http://$P/v2/lab/small/blobs/$LAYER")
check_true "8. (control) the same blob in lab/small, whose manifest passed: 200 with the right bytes" "HTTP $code" \
  test "$code" = 200 -a "$(sha_of "$T/blob")" = "$LAYER"
code=$(curl -s --max-time 30 -o "$T/body" -w '%{http_code}' "http://$P/v2/lab/untrusted/blobs/$LAYER")
check_eq "8. ... but not in lab/untrusted (refused there): 403" 403 "$code"

# ================================================================ 10. referrer in the fallback tag
expect_served "10. lab/ref:v1, signed by a cosign referrer in the fallback tag only (skopeo)" pp upstream.test/lab/ref:v1 \
  "$ACC"' and .keys == ["py"] and .rule == "upstream.test/lab/ref"' skd pp lab/ref:v1
expect_served "10. podman pull upstream.test/lab/ref:v1" pp upstream.test/lab/ref:v1 "$ACC" \
  "${PM[@]}" pull -q upstream.test/lab/ref:v1
code=$(http_status GET "http://$P/v2/lab/ref/manifests/sha256-${D#sha256:}" -H "Accept: $ACCEPT_ALL")
check_eq "10. the fallback index itself is served through the proxy" 200 "$code"

# ================================================================ 12. independent signer
expect_served "12. lab/pysig:v1 with a python3-cryptography .sig (skopeo via the mirror)" pp upstream.test/lab/pysig:v1 \
  "$ACC"' and .keys == ["py"]' skm lab/pysig:v1

# ================================================================ 9. tag moved upstream
expect_served "9. lab/moving:v1 (signed) is served" pp upstream.test/lab/moving:v1 "$ACC and .digest == \"$D\"" \
  skd pp lab/moving:v1
check "9. the tag lab/moving:v1 is moved upstream to an unsigned manifest (v2s2, $D2)" push_small lab/moving:v1 v2s2
sleep 3   # --tag-ttl 2
expect_refused "9. after the tag TTL, lab/moving:v1 is refused (skopeo)" pp upstream.test/lab/moving:v1 \
  "no signature by a trusted key" skd pp lab/moving:v1
check_decision "... the decision is about the new digest" pp 0 upstream.test/lab/moving:v1 '.digest == $d' --arg d "$D2"
expect_refused "9. ... and with podman" pp upstream.test/lab/moving:v1 "no signature by a trusted key" \
  "${PM[@]}" pull -q upstream.test/lab/moving:v1

# ================================================================ 1+2. dockerd, docker.io names
start_proxy pd --upstream "docker.io=http://$UP" --policy "$T/pol/pd.json" --admin-listen off ||
  { not_ok "proxy for docker.io starts" "$(tail -3 "$T/pd.log")"; }
PD=${ADDR[pd]}
if start_dockerd "http://$PD" "$PD"; then
  ok "dockerd starts (registry-mirrors: the docker.io proxy)"
  expect_served "1. docker pull hello (docker.io/library/hello, signed) via the mirror" pd docker.io/library/hello:latest \
    "$ACC"' and .rule == "docker.io/library/hello" and .keys == ["a"]' "${DK[@]}" pull -q hello
  got=$("${DK[@]}" image inspect --format '{{range .RepoDigests}}{{println .}}{{end}}' hello 2>&1 | grep -v '^$')
  check_eq "... docker has the upstream's digest" "hello@$HD" "$got"
  m=$(mark pd)
  if "${DK[@]}" pull -q nosig >"$T/cli.out" 2>&1; then
    not_ok "2. docker pull nosig (docker.io/library/nosig, unsigned) fails" "it succeeded"
  else
    ok "2. docker pull nosig (docker.io/library/nosig, unsigned) fails"
    log "docker's error: $(grep -v '^$' "$T/cli.out" | tail -1 | cut -c1-300)"
  fi
  check_decision "... the proxy refused it: default reject (no rule matches)" pd "$m" docker.io/library/nosig:latest \
    '.verdict == "reject" and .rule == "default" and (.reason | contains("no rule matches"))'
  check_true "... with 403 to dockerd" "no 403 for /v2/library/nosig in pd.log" \
    grep -qE '"path":"/v2/library/nosig/manifests/latest","status":403' "$T/pd.log"
  "${DK[@]}" rmi -f hello >/dev/null 2>&1 || true
else
  not_ok "dockerd starts (registry-mirrors: the docker.io proxy)" "$(tail -3 "$T/dockerd.log")"
fi
stop_bg dockerd
stop_bg pd

# ================================================================ 11. containers-policy.json
# one not_ok whether it never started or died right after answering /v2/ (no silent skip)
if start_proxy pcp --upstream "upstream.test=http://$UP" --policy "$T/pol/cp.json" --admin-listen off &&
   is_running pcp; then
  ok "proxy (containers-policy.json) starts"
  check_true "... reporting format containers-policy" "$(grep -F 'trust policy loaded' "$T/pcp.log")" \
    grep -qF '"format":"containers-policy"' "$T/pcp.log"
  CPL='transports.docker[\"upstream.test/lab\"]'
  expect_served "11. containers-policy: lab/cps:v1 signed by py as upstream.test/lab/cps (matchRepository) pulls (skopeo)" \
    pcp upstream.test/lab/cps:v1 "$ACC and .rule == \"$CPL\"" skd pcp lab/cps:v1
  expect_refused "11. containers-policy: unsigned lab/unsigned:v1" pcp upstream.test/lab/unsigned:v1 \
    "no signature by a trusted key" skd pcp lab/unsigned:v1
  expect_refused "11. containers-policy: lab/cpu:v1 signed (right identity) by an untrusted key" pcp upstream.test/lab/cpu:v1 \
    "no signature by a trusted key" skd pcp lab/cpu:v1
  expect_refused "11. containers-policy: lab/pysig:v1 signed by py as $UP/lab/pysig (matchRepository: other repository)" \
    pcp upstream.test/lab/pysig:v1 "does not match upstream.test/lab/pysig" skd pcp lab/pysig:v1
  expect_served "11. containers-policy: lab/ref:v1 (py referrer in the fallback tag, identity upstream.test/lab/ref)" \
    pcp upstream.test/lab/ref:v1 "$ACC" skd pcp lab/ref:v1
  expect_served "11. containers-policy: portcullis-signed lab/small:v1 under exactRepository $UP/lab/small" \
    pcp upstream.test/lab/small:v1 "$ACC and .rule == \"transports.docker[\\\"upstream.test/lab/small\\\"]\"" skd pcp lab/small:v1
  expect_refused "11. containers-policy: lab/untrusted:v1 signed by key c" pcp upstream.test/lab/untrusted:v1 \
    "no signature by a trusted key" skd pcp lab/untrusted:v1
  expect_refused "11. containers-policy: the copied .sig" pcp upstream.test/lab/copied:v1 \
    "signature is for $D2, not $D" skd pcp lab/copied:v1
  expect_refused "11. containers-policy: outside every scope (upstream.test/library/hello) the default rejects" pcp \
    upstream.test/library/hello:latest "rejected by default" skd pcp library/hello:latest
  check_decision "... by rule default" pcp 0 upstream.test/library/hello:latest '.rule == "default"'
  expect_served "11. containers-policy: multi-arch index signed --recursive, copy --all" pcp upstream.test/lab/multi:v1 \
    "$ACC" skd pcp lab/multi:v1 --all
else
  not_ok "proxy (containers-policy.json) starts (section 11 not run)" "$(tail -3 "$T/pcp.log")"
fi
stop_bg pcp

# ================================================================ 13. broken policies at start
# bad_start NAME CONTENT EXPECTED-STDERR : serve with this policy must exit 2 naming the problem
bad_start() {
  local f=$T/pol/bad-$1.json port rc
  printf '%s' "$2" >"$f"
  port=$(free_port)
  timeout 20 "$PORTCULLIS_BIN" serve --listen "127.0.0.1:$port" --data-dir "$T/bad-$1-data" \
    --upstream "upstream.test=http://$UP" --admin-listen off --policy "$f" >"$T/bad.out" 2>"$T/bad.err" </dev/null
  rc=$?
  check_eq "13. serve refuses to start with $1 (exit 2)" 2 "$rc"
  check_true "... stderr names the problem: $3" "stderr: $(tail -2 "$T/bad.err" | tr '\n' ' ')" grep -qF -- "$3" "$T/bad.err"
}
bad_start bad-json '{"keys":{},"rules":[' "not valid JSON"
bad_start unknown-field '{"rules":[],"rulez":[]}' 'unknown field "rulez"'
bad_start missing-key '{"keys":{"a":{"path":"keys/nope.pub"}},"rules":[]}' "keys/nope.pub"
bad_start cp-signedby '{"default":[{"type":"reject"}],"transports":{"docker":{"upstream.test":[{"type":"signedBy","keyType":"GPGKeys","keyPath":"/etc/pki/key.gpg"}]}}}' \
  '"signedBy"'
port=$(free_port)
timeout 20 "$PORTCULLIS_BIN" serve --listen "127.0.0.1:$port" --data-dir "$T/bad-absent-data" \
  --upstream "upstream.test=http://$UP" --admin-listen off --policy "$T/pol/absent.json" >"$T/bad.out" 2>"$T/bad.err" </dev/null
check_eq "13. serve refuses to start with a policy file that does not exist (exit 2)" 2 "$?"
check_true "... naming the file" "stderr: $(tail -2 "$T/bad.err" | tr '\n' ' ')" grep -qF "absent.json" "$T/bad.err"

# ================================================================ 13. SIGHUP
hup() { kill -HUP "${PIDS[pp]}"; }
m=$(mark pp)
printf '{"keys":{"a":{"path":"keys/a.pub"}},"rules":[' >"$T/pol/pp.json"
hup
check_true "13. SIGHUP with a broken policy (bad JSON): the reload failure is logged" "no 'reload failed' line" \
  wait_log pp "$m" '"msg":"SIGHUP: reload failed; the old settings stay in force"'
check_true "... naming the problem" "$(tail -n +"$((m + 1))" "$T/pp.log" | grep -F 'reload failed' | head -1 | cut -c1-300)" \
  bash -c 'tail -n +"$(($2 + 1))" "$1" | grep -F "reload failed" | grep -qF "not valid JSON"' _ "$T/pp.log" "$m"
check_true "... the proxy still runs" "pp exited" is_running pp
sleep 1.2   # cached verdicts expire: the decisions below are made by the policy in force
expect_served "13. ... a signed pull still works (old policy)" pp upstream.test/lab/small:v1 \
  "$ACC and .policy_version == \"$PP_VERSION\"" skd pp lab/small:v1
expect_refused "13. ... an unsigned pull is still refused" pp upstream.test/lab/unsigned:v1 \
  "no signature by a trusted key" skd pp lab/unsigned:v1
check_decision "... by the old policy version" pp "$m" upstream.test/lab/unsigned:v1 '.policy_version == $v' --arg v "$PP_VERSION"

m=$(mark pp)
printf '{"keys":{"a":{"path":"keys/gone.pub"}},"rules":[{"match":"**","require":{"keys":["a"]}}]}' >"$T/pol/pp.json"
hup
check_true "13. SIGHUP with a policy naming a missing key file: the failure is logged" "no 'reload failed' line" \
  wait_log pp "$m" 'SIGHUP: reload failed'
check_true "... naming the file" "$(tail -n +"$((m + 1))" "$T/pp.log" | grep -F 'reload failed' | head -1 | cut -c1-300)" \
  bash -c 'tail -n +"$(($2 + 1))" "$1" | grep -F "reload failed" | grep -qF "gone.pub"' _ "$T/pp.log" "$m"
sleep 1.2
expect_served "13. ... a signed pull still works" pp upstream.test/lab/small:v1 \
  "$ACC and .policy_version == \"$PP_VERSION\"" skd pp lab/small:v1
expect_refused "13. ... an unsigned pull is still refused" pp upstream.test/lab/unsigned:v1 \
  "no signature by a trusted key" skd pp lab/unsigned:v1
check_decision "... by the old policy version" pp "$m" upstream.test/lab/unsigned:v1 '.policy_version == $v' --arg v "$PP_VERSION"

m=$(mark pp)
pp_policy "$T/pol/pp.json" '{"match":"upstream.test/lab/unsigned","action":"accept"}'
hup
check_true "13. SIGHUP with a fixed policy (accepting lab/unsigned): reloaded" "no 'reloaded' line" \
  wait_log pp "$m" '"msg":"reloaded: upstream settings and policy"'
expect_served "13. ... the new policy takes effect: lab/unsigned:v1 is served" pp upstream.test/lab/unsigned:v1 \
  "$ACC and .rule == \"upstream.test/lab/unsigned\" and .policy_version != \"$PP_VERSION\"" skd pp lab/unsigned:v1
expect_served "... and lab/small:v1 still" pp upstream.test/lab/small:v1 "$ACC" skd pp lab/small:v1
expect_refused "... and lab/untrusted:v1 is still refused" pp upstream.test/lab/untrusted:v1 \
  "no signature by a trusted key" skd pp lab/untrusted:v1

# ================================================================ 14. admin API
# api METHOD PATH : with the token; body in $T/api.body, prints the status
api() {
  curl -s --max-time 60 -o "$T/api.body" -w '%{http_code}' -X "$1" -H "Authorization: Bearer $TOKEN" "http://$A$2"
}
cp "$T/pol/pp-orig.json" "$T/pol/pp.json"
code=$(api POST /api/v1/policy/reload)
check_true "14. POST /api/v1/policy/reload with the original policy: 200, reloaded, its version" \
  "HTTP $code $(head -c 300 "$T/api.body")" \
  jq -e --arg v "$PP_VERSION" '.reloaded == true and .version == $v' "$T/api.body"
check_eq "14. ... with status 200" 200 "$code"
sleep 1.2
expect_refused "14. ... lab/unsigned:v1 is refused again" pp upstream.test/lab/unsigned:v1 \
  "no signature by a trusted key" skd pp lab/unsigned:v1

printf '{"keys":{"a":{"path":"keys/a.pub"}},"rules":[],"rulez":[]}' >"$T/pol/pp.json"
m=$(mark pp)
code=$(api POST /api/v1/policy/reload)
check_true "14. POST /api/v1/policy/reload with a broken policy: an error answer naming the problem" \
  "HTTP $code $(head -c 300 "$T/api.body")" \
  bash -c '[[ $1 != 200 && $1 -ge 400 ]] && jq -e "(.errors[0].message | contains(\"rulez\"))" "$2"' _ "$code" "$T/api.body"
log "reload of a broken policy answered HTTP $code: $(head -c 300 "$T/api.body")"
sleep 1.2
expect_refused "14. ... the old policy stays: lab/unsigned:v1 refused" pp upstream.test/lab/unsigned:v1 \
  "no signature by a trusted key" skd pp lab/unsigned:v1
check_decision "... by the old policy version" pp "$m" upstream.test/lab/unsigned:v1 '.policy_version == $v' --arg v "$PP_VERSION"
expect_served "14. ... and lab/small:v1 served" pp upstream.test/lab/small:v1 \
  "$ACC and .policy_version == \"$PP_VERSION\"" skd pp lab/small:v1

code=$(api GET "/api/v1/policy/test?image=upstream.test/lab/small:v1")
check_true "14. GET /api/v1/policy/test?image=upstream.test/lab/small:v1: rule and verdict accept" \
  "HTTP $code $(head -c 400 "$T/api.body")" \
  jq -e --arg d "$D" '.rule == "upstream.test/lab/**" and .verdict == "accept" and .digest == $d and .keys == ["a"]' "$T/api.body"
code=$(api GET "/api/v1/policy/test?image=upstream.test/lab/unsigned:v1")
check_true "14. GET /api/v1/policy/test for lab/unsigned:v1: verdict reject with the reason" \
  "HTTP $code $(head -c 400 "$T/api.body")" \
  jq -e '.verdict == "reject" and (.reason | startswith("no signature by a trusted key"))' "$T/api.body"
code=$(api GET "/api/v1/policy/test?image=upstream.test/lab/k2:v1")
check_true "14. GET /api/v1/policy/test for lab/k2:v1: accept by rule upstream.test/lab/k2 with keys a, b" \
  "HTTP $code $(head -c 400 "$T/api.body")" \
  jq -e '.verdict == "accept" and .rule == "upstream.test/lab/k2" and .keys == ["a","b"]' "$T/api.body"
code=$(curl -s --max-time 30 -o /dev/null -w '%{http_code}' -X POST "http://$A/api/v1/policy/reload")
check_eq "14. POST /api/v1/policy/reload without the token: 401" 401 "$code"
# The same through `portcullis admin policy ...`.
ADM=("$PORTCULLIS_BIN" admin --server "http://$A" --token-file "$T/admin.token")
out=$("${ADM[@]}" policy test upstream.test/lab/small:v1 2>&1); rc=$?
check_eq "14. admin policy test (signed): exit 0, verdict accept" "0 1" "$rc $(grep -c 'verdict  accept' <<<"$out")"
out=$("${ADM[@]}" policy test upstream.test/lab/unsigned:v1 2>&1); rc=$?
check_eq "14. admin policy test (unsigned): exit 1, verdict reject" "1 1" "$rc $(grep -c 'verdict  reject' <<<"$out")"
# The policy file is still the broken one written above: the CLI says why, exit 2.
out=$("${ADM[@]}" policy reload 2>&1); rc=$?
check_eq "14. admin policy reload of the broken file: exit 2 naming the bad field" "2 1" "$rc $(grep -c 'rulez' <<<"$out")"

check_true "the proxy ran to the end of the suite" "pp exited" is_running pp
"${PM[@]}" rmi -a -f >/dev/null 2>&1 || true
finish
