#!/usr/bin/env bash
# The trust gate against whoever can push to the upstream (issue 10; the security review's
# C1, M1, M2, M3, M5 and L11 recipes, and variants). A real docker-registry upstream
# (distribution 2.8, no referrers API); hostile_push.py pushes the attack manifests; every
# attack has its own repository and its own UNSIGNED image whose one layer is a tar holding
# the marker PORTCULLIS-HOSTILE-LAYER (a response body holding the marker holds the layer).
# Main policy (Portcullis format): key `release` required for upstream.test/team/**, default
# reject, plus a digest pin `upstream.test/team/pin@<child A>` -> reject.
#
# Expected (status and the OCI code DENIED only; messages are free):
#   0. controls: a signed image (team/signed:v1): manifest by tag and digest 200, layer 200
#      (its bytes), skopeo copy succeeds; its cosign .sig manifest 200 and the simple-signing
#      payload blob it names 200.
#   every attack: the manifest answers 403 DENIED; the unsigned image's layer answers 403
#   DENIED (and no byte of it), by tag and by digest, before and after the attack artifacts
#   were requested; skopeo copy of the attacked tag fails; the proxy still runs.
#   1. team/a1:subject   unsigned image with a `subject`
#   2. team/a2:artifacttype  unsigned image, artifactType cosign .sig
#   3. team/a3:bundle    unsigned image, artifactType sigstore bundle v0.3
#   4. team/a4:cfgsig    unsigned image, config mediaType cosign .sig, the layer a tar
#   5. team/a5: an index listing v1 under the tag sha256-<64 zeros>: that tag 403, then v1 403
#  5b. team/a5b: the same index with a lying artifactType (cosign .sig) on its descriptor: the
#      tag may be 200 or 403 (not asserted); the child by digest, v1, the layer: 403
#   6. team/a6: the unsigned image also under sha256-<own hex>.sig, .att, .sbom: each 403
#   7. team/a7: a .sig-shaped manifest (sha256-<v1 hex>.sig) whose payload is the tar layer:
#      the manifest may be 200 or 403 (not asserted); the layer 403; v1 403
#  7b. team/a7b: the same .sig-shaped manifest as a referrer (artifactType cosign .sig, subject
#      v1) listed in the fallback index sha256-<v1 hex> (an index child that is an artifact):
#      index and referrer may be 200 or 403 (not asserted); the tar 403; v1 403
#   8. team/a8: index (outer, carrying a `subject`) -> index (inner) -> image (v1), all
#      unsigned: every level 403 (plain nesting was refused at 684bc4b already; the bait on
#      the outer index checks that nothing it names becomes "covered", transitively)
#   9. team/pin:v1 a signed index (index only) of children A and B, A pinned to reject:
#      index 200, A by digest 403, B by digest 200, A's layer 403, skopeo copy of A fails
#  10. M1: team/revoke:v1 signed index, proxy --verdict-ttl 2: index, child, child's layer 200;
#      the .sig deleted upstream; within 20 s: index 403, child by digest 403, layer 403
#  11. M2: containers-policy rejecting upstream.test/team/app:debug only, v1 and debug the same
#      digest. Fresh data dir A: debug 403 then v1 200. Fresh data dir B: v1 200 then debug 403
#  12. M3: upstream named `internal`, containers-policy accepting docker.io only:
#      /v2/team/app/manifests/v1 403 (and its layer 403)
#  13. M5: a .sig of team/bomb1:v1 with 15000 layers on one payload blob: v1 403 within 30 s,
#      at most 100 upstream blob GETs in team/bomb1; team/bomb2: 500 distinct payloads, same
#  14. L11: a config-file policy dropped by a SIGHUP reload logs a line at level warn that
#      mentions the policy; a policy accepting everything logs one at start
#  15. OCI answers under the gate: a blob the upstream lacks is 404 BLOB_UNKNOWN; an accept
#      rule serves blobs before any manifest; the same blob under a require rule is 403
source "$(dirname "$0")/lib.sh"
suite_init hostile_pusher
signing_env 'hostile pusher it pass'

HP=$IT_DIR/hostile_push.py
MARK=PORTCULLIS-HOSTILE-LAYER
Z64=$(printf '0%.0s' $(seq 64))
SIGTYPE=application/vnd.dev.cosign.artifact.sig.v1+json
BUNDLETYPE=application/vnd.dev.sigstore.bundle.v0.3+json
OCI_I=application/vnd.oci.image.index.v1+json

# ---------------------------------------------------------------- helpers
# hpush REPO CMD ARGS... : hostile_push.py against the upstream; its JSON on stdout
hpush() { "$PY" "$HP" "http://$UP" "$@"; }
# j JSON FIELD
j() { jq -r ".$2" <<<"$1"; }
# ref JSON : DIGEST:SIZE of a pushed manifest (for hostile_push.py index --child)
ref() { echo "$(j "$1" digest):$(j "$1" size)"; }
# sign REPO:TAG : portcullis sign with key release, straight to the upstream (index only)
sign() { pc sign "$UP/$1" --key "$T/release.key" --allow-http; }

# fetch URL [curl args] : sets CODE and ERR (first OCI error code); the body in $T/body
fetch() {
  local url=$1; shift
  : >"$T/body"
  CODE=$(curl -s --max-time "${MAXT:-60}" -o "$T/body" -w '%{http_code}' -H "Accept: $ACCEPT_ALL" "$@" "$url")
  ERR=$(jq -r '.errors[0].code // empty' "$T/body" 2>/dev/null)
}
leaked() { grep -qaF "$MARK" "$T/body"; }
shown() { head -c 160 "$T/body" | tr -cd '[:print:]'; }
# denied DESC URL : 403, code DENIED, no byte of an unsigned layer in the body
denied() {
  fetch "$2"
  if leaked; then not_ok "$1" "HTTP $CODE and the body holds the unsigned layer's bytes"; return 1; fi
  if [[ $CODE == 403 && $ERR == DENIED ]]; then ok "$1"; return 0; fi
  not_ok "$1" "want HTTP 403 code DENIED; got HTTP $CODE code '$ERR' $(shown)"; return 1
}
# served DESC URL DIGEST : 200 and the body hashes to DIGEST
served() {
  fetch "$2"
  local got
  got=$(sha_of "$T/body")
  if [[ $CODE == 200 && $got == "$3" ]]; then ok "$1"; return 0; fi
  not_ok "$1" "want HTTP 200 with $3; got HTTP $CODE, body $got $(shown)"; return 1
}
# not_asserted DESC URL : logs the answer (for requests whose status the rules leave open)
not_asserted() { fetch "$2"; log "$1: HTTP $CODE ${ERR:+code $ERR} (not asserted)"; }
# eventually_denied DESC URL DEADLINE(epoch s) : polls until 403 DENIED (no layer bytes ever)
eventually_denied() {
  local first=""
  while :; do
    fetch "$2"
    if leaked && [[ $CODE != 200 ]]; then not_ok "$1" "HTTP $CODE with the unsigned layer's bytes"; return 1; fi
    [[ -z $first ]] && first=$CODE
    if [[ $CODE == 403 && $ERR == DENIED ]]; then ok "$1"; return 0; fi
    if (($(date +%s) >= $3)); then
      not_ok "$1" "still HTTP $CODE ${ERR:+code $ERR} at the deadline (first answer $first)"; return 1
    fi
    sleep 0.3
  done
}

N=0
mkdir -p "$T/out"
# skopeo_pull PROXYNAME REPO[:TAG|@DIGEST] : skopeo copy through the proxy into a fresh oci: layout
skopeo_pull() { N=$((N + 1)); sk copy -q --src-tls-verify=false "docker://${ADDR[$1]}/upstream.test/$2" "oci:$T/out/$N:x"; }
skopeo_fails() {
  if skopeo_pull "$1" "$2" >"$T/sk.out" 2>&1; then
    not_ok "$3" "skopeo copy succeeded"; return 1
  fi
  ok "$3"
}
# M REPO : the main proxy's URL prefix for upstream.test/REPO
M() { echo "http://${ADDR[main]}/v2/upstream.test/$1"; }
alive() { check_true "$1: the proxy ($2) still runs" "it exited: $(tail -2 "$T/$2.log" | cut -c1-200 | tr '\n' ' ')" is_running "$2"; }

# image_denied LABEL REPO TAG IMAGE-JSON [PROXY-URL-PREFIX] : the unsigned image: layer, manifest
# by tag and by digest: each 403 DENIED without its bytes
image_denied() {
  local base=${5:-$(M "$2")}
  denied "$1: layer of $2 -> 403 DENIED" "$base/blobs/$(j "$4" layer)"
  denied "$1: manifest $2:$3 -> 403 DENIED" "$base/manifests/$3"
  denied "$1: manifest $2@digest -> 403 DENIED" "$base/manifests/$(j "$4" digest)"
  denied "$1: layer of $2 (again) -> 403 DENIED" "$base/blobs/$(j "$4" layer)"
}

# ================================================================ setup
start_upstream upstream || { not_ok "upstream registry starts" "see $T/upstream.log"; finish; }
UP=${ADDR[upstream]}
gen_keys release || finish

pushed=1
for v in SIG A1 A2 A3 A4 A5 A5I A5B A5BI A6 A7 A7S A7B A7BS A7BI A8 A8I A8O A9A A9B A9I A10 A10I APP B1 B2 B1S B2S; do
  printf -v "$v" '{}'   # a failed push leaves '{}' (checks then fail instead of aborting on set -u)
done
push() { # VAR REPO CMD ARGS... : VAR=the JSON hostile_push.py printed
  local var=$1 out; shift
  if out=$(hpush "$@" 2>"$T/push.err"); then printf -v "$var" '%s' "$out"; else
    pushed=0; log "hostile_push.py $*: $(tail -2 "$T/push.err")"; fi
}
SUBJ='{"subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:'$Z64'","size":2}}'
push SIG team/signed image --seed signed --tag v1
push A1 team/a1 image --seed a1 --tag subject --extra "$SUBJ"
push A2 team/a2 image --seed a2 --tag artifacttype --extra '{"artifactType":"'$SIGTYPE'"}'
push A3 team/a3 image --seed a3 --tag bundle --extra '{"artifactType":"'$BUNDLETYPE'"}'
push A4 team/a4 image --seed a4 --tag cfgsig --config-media-type "$SIGTYPE"
push A5 team/a5 image --seed a5 --tag v1
push A5I team/a5 index --child "$(ref "$A5")" --tag "sha256-$Z64"
push A5B team/a5b image --seed a5b --tag v1
push A5BI team/a5b index --child "$(ref "$A5B")" --artifact-type "$SIGTYPE" --tag "sha256-$Z64"
push A6 team/a6 image --seed a6 --tag v1 --tag 'sha256-{hex}.sig' --tag 'sha256-{hex}.att' --tag 'sha256-{hex}.sbom'
push A7 team/a7 image --seed a7 --tag v1
push A7S team/a7 fakesig --target "$(j "$A7" digest)" --payload "$(j "$A7" layer):$(j "$A7" layer_size)"
push A7B team/a7b image --seed a7b --tag v1
push A7BS team/a7b fakesig --target "$(j "$A7B" digest)" --payload "$(j "$A7B" layer):$(j "$A7B" layer_size)" \
  --tag 'sig-artifact' --extra '{"artifactType":"'$SIGTYPE'","subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"'"$(j "$A7B" digest)"'","size":'"$(j "$A7B" size)"'}}'
push A7BI team/a7b index --child "$(ref "$A7BS")::$SIGTYPE" --tag "sha256-$(j "$A7B" digest | cut -d: -f2)"
push A8 team/a8 image --seed a8 --tag v1
push A8I team/a8 index --child "$(ref "$A8")" --tag inner
push A8O team/a8 index --child "$(ref "$A8I"):$OCI_I" --tag outer --extra "$SUBJ"
push A9A team/pin image --seed a9-child-a
push A9B team/pin image --seed a9-child-b
push A9I team/pin index --child "$(ref "$A9A")" --child "$(ref "$A9B")" --tag v1
push A10 team/revoke image --seed a10
push A10I team/revoke index --child "$(ref "$A10")" --tag v1
push APP team/app image --seed app --tag v1 --tag debug
push B1 team/bomb1 image --seed bomb1 --tag v1
push B2 team/bomb2 image --seed bomb2 --tag v1
if ((pushed)); then ok "hostile_push.py pushed every attack into the upstream"; else
  not_ok "hostile_push.py pushed every attack into the upstream" "see the log lines above"; finish; fi
push B1S team/bomb1 sigbomb --target "$(j "$B1" digest)" --layers 15000
push B2S team/bomb2 sigbomb --target "$(j "$B2" digest)" --layers 500 --distinct
check_eq "the signature bombs are in the upstream (15000 layers on 1 payload; 500 payloads)" "1 1 500" \
  "$pushed $(j "$B1S" payloads) $(j "$B2S" payloads)"
if sign team/signed:v1 >"$T/sign.out" 2>&1 && sign team/pin:v1 >>"$T/sign.out" 2>&1 &&
   sign team/revoke:v1 >>"$T/sign.out" 2>&1; then
  ok "portcullis sign (key release): team/signed:v1, and the indexes team/pin:v1 and team/revoke:v1 only"
else not_ok "portcullis sign (key release)" "$(tail -2 "$T/sign.out")"; finish; fi

mkdir -p "$T/pol"
cat >"$T/pol/main.json" <<JSON
{"keys":{"release":{"path":"keys/release.pub"}},
 "rules":[{"match":"upstream.test/team/**","require":{"keys":["release"]}},
          {"match":"upstream.test/team/pin@$(j "$A9A" digest)","action":"reject"}],
 "default":"reject"}
JSON
start_proxy main --upstream "upstream.test=http://$UP" --policy "$T/pol/main.json" --admin-listen off ||
  { not_ok "proxy (policy: release required for upstream.test/team/**) starts" "$(tail -3 "$T/main.log")"; finish; }
ok "proxy (policy: release required for upstream.test/team/**) starts"

# ================================================================ 0. controls
served "0. signed team/signed:v1 -> 200" "$(M team/signed)/manifests/v1" "$(j "$SIG" digest)"
served "0. signed team/signed@digest -> 200" "$(M team/signed)/manifests/$(j "$SIG" digest)" "$(j "$SIG" digest)"
served "0. its layer -> 200 with its bytes" "$(M team/signed)/blobs/$(j "$SIG" layer)" "$(j "$SIG" layer)"
check "0. skopeo copy of team/signed:v1 through the proxy succeeds" skopeo_pull main team/signed:v1
SIGTAG=sha256-$(j "$SIG" digest | cut -d: -f2).sig
SIGMD=$(manifest_digest "$UP" team/signed "$SIGTAG") || SIGMD=unknown
served "0. its cosign .sig manifest ($SIGTAG) -> 200" "$(M team/signed)/manifests/$SIGTAG" "$SIGMD"
PAYLOAD=$(jq -r '.layers[0].digest // empty' "$T/body" 2>/dev/null)
served "0. the simple-signing payload blob the .sig names -> 200" "$(M team/signed)/blobs/${PAYLOAD:-none}" "${PAYLOAD:-none}"

# ================================================================ 1-4. the unsigned image itself carries the bait
attack_self() { # LABEL REPO TAG JSON
  denied "$1: (before) layer of $2 -> 403 DENIED" "$(M "$2")/blobs/$(j "$4" layer)"
  image_denied "$1" "$2" "$3" "$4"
  skopeo_fails main "$2:$3" "$1: skopeo copy of $2:$3 fails"
  alive "$1" main
}
attack_self "1. subject" team/a1 subject "$A1"
attack_self "2. artifactType cosign sig" team/a2 artifacttype "$A2"
attack_self "3. artifactType sigstore bundle" team/a3 bundle "$A3"
attack_self "4. config mediaType cosign sig, tar layer" team/a4 cfgsig "$A4"

# ================================================================ 5. index under the fallback tag
image_denied "5. before" team/a5 v1 "$A5"
denied "5. index listing v1 under sha256-<64 zeros> -> 403 DENIED" "$(M team/a5)/manifests/sha256-$Z64"
denied "5. ... by digest -> 403 DENIED" "$(M team/a5)/manifests/$(j "$A5I" digest)"
image_denied "5. after" team/a5 v1 "$A5"
skopeo_fails main team/a5:v1 "5. skopeo copy of team/a5:v1 fails"
alive "5" main

image_denied "5b. before" team/a5b v1 "$A5B"
not_asserted "5b. index with a lying artifactType under sha256-<64 zeros>" "$(M team/a5b)/manifests/sha256-$Z64"
check_true "5b. ... it is 200 or 403, never the layer" "HTTP $CODE $(shown)" \
  bash -c '[[ $1 == 200 || $1 == 403 ]] && ! grep -qaF "$2" "$3"' _ "$CODE" "$MARK" "$T/body"
image_denied "5b. after" team/a5b v1 "$A5B"
skopeo_fails main team/a5b:v1 "5b. skopeo copy of team/a5b:v1 fails"
alive "5b" main

# ================================================================ 6. a runnable image under .sig/.att/.sbom tags
A6HEX=$(j "$A6" digest | cut -d: -f2)
image_denied "6. before" team/a6 v1 "$A6"
for s in sig att sbom; do
  denied "6. the unsigned image under sha256-<own hex>.$s -> 403 DENIED" "$(M team/a6)/manifests/sha256-$A6HEX.$s"
done
image_denied "6. after" team/a6 v1 "$A6"
skopeo_fails main "team/a6:sha256-$A6HEX.sig" "6. skopeo copy of team/a6:sha256-<hex>.sig fails"
skopeo_fails main team/a6:v1 "6. skopeo copy of team/a6:v1 fails"
alive "6" main

# ================================================================ 7. a .sig whose payload is the tar
image_denied "7. before" team/a7 v1 "$A7"
not_asserted "7. the .sig-shaped manifest naming the tar as payload" "$(M team/a7)/manifests/$(j "$A7S" tag)"
check_true "7. ... it is 200 or 403" "HTTP $CODE $(shown)" test "$CODE" = 200 -o "$CODE" = 403
denied "7. the 'payload' blob (the tar layer) -> 403 DENIED" "$(M team/a7)/blobs/$(j "$A7" layer)"
image_denied "7. after" team/a7 v1 "$A7"
skopeo_fails main team/a7:v1 "7. skopeo copy of team/a7:v1 fails"
alive "7" main

# ================================================================ 7b. the same, as a referrer in the fallback index
A7BHEX=$(j "$A7B" digest | cut -d: -f2)
image_denied "7b. before" team/a7b v1 "$A7B"
not_asserted "7b. the fallback index sha256-<v1 hex> listing the .sig-shaped referrer" "$(M team/a7b)/manifests/sha256-$A7BHEX"
not_asserted "7b. the referrer by digest (an index child that is an artifact)" "$(M team/a7b)/manifests/$(j "$A7BS" digest)"
check_true "7b. ... it is 200 or 403, never the layer" "HTTP $CODE $(shown)" \
  bash -c '[[ $1 == 200 || $1 == 403 ]] && ! grep -qaF "$2" "$3"' _ "$CODE" "$MARK" "$T/body"
denied "7b. its 'payload' blob (the tar layer) -> 403 DENIED" "$(M team/a7b)/blobs/$(j "$A7B" layer)"
image_denied "7b. after" team/a7b v1 "$A7B"
skopeo_fails main team/a7b:v1 "7b. skopeo copy of team/a7b:v1 fails"
alive "7b" main

# ================================================================ 8. nested unsigned indexes
image_denied "8. before" team/a8 v1 "$A8"
denied "8. outer index (tag outer) -> 403 DENIED" "$(M team/a8)/manifests/outer"
denied "8. outer index by digest -> 403 DENIED" "$(M team/a8)/manifests/$(j "$A8O" digest)"
denied "8. inner index (tag inner) -> 403 DENIED" "$(M team/a8)/manifests/inner"
denied "8. inner index by digest -> 403 DENIED" "$(M team/a8)/manifests/$(j "$A8I" digest)"
image_denied "8. after" team/a8 v1 "$A8"
skopeo_fails main team/a8:v1 "8. skopeo copy of team/a8:v1 fails"
alive "8" main

# ================================================================ 9. signed index, child pinned to reject
A9AD=$(j "$A9A" digest) A9BD=$(j "$A9B" digest)
denied "9. (before) child A (pinned reject) by digest -> 403 DENIED" "$(M team/pin)/manifests/$A9AD"
served "9. signed index team/pin:v1 -> 200" "$(M team/pin)/manifests/v1" "$(j "$A9I" digest)"
denied "9. child A by digest -> 403 DENIED (the digest pin wins over the signed index)" "$(M team/pin)/manifests/$A9AD"
denied "9. child A's layer -> 403 DENIED" "$(M team/pin)/blobs/$(j "$A9A" layer)"
served "9. child B by digest -> 200 (covered by the signed index)" "$(M team/pin)/manifests/$A9BD" "$A9BD"
served "9. child B's layer -> 200" "$(M team/pin)/blobs/$(j "$A9B" layer)" "$(j "$A9B" layer)"
denied "9. child A by digest (again) -> 403 DENIED" "$(M team/pin)/manifests/$A9AD"
skopeo_fails main "team/pin@$A9AD" "9. skopeo copy of team/pin@<child A> fails"
check "9. skopeo copy of team/pin@<child B> succeeds" skopeo_pull main "team/pin@$A9BD"
alive "9" main

# ================================================================ 13. signature bombs (M5)
# blob_gets_in REPO : upstream blob GETs in that repository so far (distribution's access log)
blob_gets_in() { grep -F " /v2/$1/blobs/" "$T/upstream.log" >"$T/repo-access.log"; upstream_blob_gets "$T/repo-access.log"; }
# settled_gets REPO : the count once it stayed the same for a second (at most 60 s)
settled_gets() {
  local a b i
  a=$(blob_gets_in "$1")
  for i in $(seq 60); do sleep 1; b=$(blob_gets_in "$1"); [[ $a == "$b" ]] && break; a=$b; done
  echo "$a"
}
bomb() { # LABEL REPO
  local g0 t0 ms g1
  g0=$(blob_gets_in "$2")
  t0=$(date +%s%N)
  MAXT=30 denied "$1: $2:v1 -> 403 DENIED" "$(M "$2")/manifests/v1"
  ms=$((($(date +%s%N) - t0) / 1000000))
  check_true "$1: ... answered within 30 s" "took $ms ms (HTTP $CODE)" test "$CODE" != 000 -a "$ms" -lt 30000
  g1=$(settled_gets "$2")
  log "$1: $((g1 - g0)) upstream blob GETs, $ms ms"
  check_true "$1: ... at most 100 upstream blob GETs for it" "$((g1 - g0)) blob GETs" test $((g1 - g0)) -le 100
  alive "$1" main
}
bomb "13. .sig with 15000 layers on one payload" team/bomb1
bomb "13. .sig with 500 distinct payloads" team/bomb2

# ================================================================ 10. revocation (M1)
start_proxy rev --upstream "upstream.test=http://$UP" --policy "$T/pol/main.json" --verdict-ttl 2 --admin-listen off ||
  { not_ok "proxy (--verdict-ttl 2) starts" "$(tail -3 "$T/rev.log")"; }
R=http://${ADDR[rev]}/v2/upstream.test/team/revoke
A10D=$(j "$A10" digest)
served "10. signed index team/revoke:v1 -> 200" "$R/manifests/v1" "$(j "$A10I" digest)"
served "10. its child by digest -> 200" "$R/manifests/$A10D" "$A10D"
served "10. the child's layer -> 200" "$R/blobs/$(j "$A10" layer)" "$(j "$A10" layer)"
RSIG=$(manifest_digest "$UP" team/revoke "sha256-$(j "$A10I" digest | cut -d: -f2).sig") || RSIG=none
code=$(http_status DELETE "http://$UP/v2/team/revoke/manifests/$RSIG")
check_eq "10. the index's .sig is deleted upstream (202), the tag is gone (404)" "202 404" \
  "$code $(http_status GET "http://$UP/v2/team/revoke/manifests/sha256-$(j "$A10I" digest | cut -d: -f2).sig" -H "Accept: $ACCEPT_ALL")"
deadline=$(($(date +%s) + 20))
eventually_denied "10. after --verdict-ttl: the index -> 403 DENIED" "$R/manifests/v1" "$deadline"
eventually_denied "10. ... the child by digest -> 403 DENIED" "$R/manifests/$A10D" "$deadline"
eventually_denied "10. ... the child's layer -> 403 DENIED" "$R/blobs/$(j "$A10" layer)" "$deadline"
skopeo_fails rev "team/revoke@$A10D" "10. skopeo copy of the child by digest fails"
alive "10" rev
stop_bg rev

# ================================================================ 11. tag-scoped containers-policy (M2)
cat >"$T/pol/m2.json" <<'JSON'
{"default":[{"type":"insecureAcceptAnything"}],
 "transports":{"docker":{"upstream.test/team/app:debug":[{"type":"reject"}]}}}
JSON
APPD=$(j "$APP" digest)
for run in a b; do
  start_proxy "m2$run" --upstream "upstream.test=http://$UP" --policy "$T/pol/m2.json" --admin-listen off ||
    { not_ok "11. proxy m2$run (containers-policy, fresh data dir) starts" "$(tail -3 "$T/m2$run.log")"; continue; }
  U=http://${ADDR[m2$run]}/v2/upstream.test/team/app
  if [[ $run == a ]]; then
    denied "11. data dir A: team/app:debug (scope rejects) -> 403 DENIED" "$U/manifests/debug"
    served "11. data dir A: then team/app:v1 (same digest) -> 200" "$U/manifests/v1" "$APPD"
  else
    served "11. data dir B: team/app:v1 -> 200" "$U/manifests/v1" "$APPD"
    denied "11. data dir B: then team/app:debug (same digest) -> 403 DENIED" "$U/manifests/debug"
  fi
  alive "11 ($run)" "m2$run"
  stop_bg "m2$run"
done

# ================================================================ 12. dotless upstream name (M3)
cat >"$T/pol/m3.json" <<'JSON'
{"default":[{"type":"reject"}],"transports":{"docker":{"docker.io":[{"type":"insecureAcceptAnything"}]}}}
JSON
if start_proxy m3 --upstream "internal=http://$UP" --default-upstream internal --policy "$T/pol/m3.json" --admin-listen off; then
  denied "12. upstream 'internal', docker.io trusted: /v2/team/app/manifests/v1 -> 403 DENIED" \
    "http://${ADDR[m3]}/v2/team/app/manifests/v1"
  denied "12. ... its layer -> 403 DENIED" "http://${ADDR[m3]}/v2/team/app/blobs/$(j "$APP" layer)"
  alive "12" m3
else not_ok "12. proxy with upstream 'internal' starts" "$(tail -3 "$T/m3.log")"; fi
stop_bg m3

# ================================================================ 14. policy dropped or accepting everything (L11)
# warn_policy_since LOGNAME MARK : a JSON line after MARK at level warn that mentions the policy
warn_policy_since() {
  tail -n +"$(($2 + 1))" "$T/$1.log" | grep -F '"level":"warn"' | grep -qi 'policy'
}
wait_warn_policy() { # LOGNAME MARK SECONDS
  local i
  for i in $(seq $(($3 * 5))); do warn_policy_since "$1" "$2" && return 0; sleep 0.2; done
  return 1
}
printf '{"policy":"%s"}\n' "$T/pol/main.json" >"$T/l11.json"
if start_proxy l11 --config "$T/l11.json" --upstream "upstream.test=http://$UP" --admin-listen off; then
  denied "14. (control) the config file's policy is in force: team/app:v1 -> 403 DENIED" \
    "http://${ADDR[l11]}/v2/upstream.test/team/app/manifests/v1"
  m=$(wc -l <"$T/l11.log")
  printf '{}\n' >"$T/l11.json"
  kill -HUP "${PIDS[l11]}"
  if wait_warn_policy l11 "$m" 10; then ok "14. SIGHUP after the config file lost its policy: a warn line mentions the policy"
  else not_ok "14. SIGHUP after the config file lost its policy: a warn line mentions the policy" \
    "none within 10 s; logged: $(tail -n +"$((m + 1))" "$T/l11.log" | grep -v '"msg":"access"' | tail -2 | cut -c1-250)"; fi
  alive "14" l11
else not_ok "14. proxy with --config (policy in the file) starts" "$(tail -3 "$T/l11.log")"; fi
stop_bg l11
printf '{"default":"accept","rules":[]}\n' >"$T/pol/accept-all.json"
if start_proxy acc --upstream "upstream.test=http://$UP" --policy "$T/pol/accept-all.json" --admin-listen off; then
  if wait_warn_policy acc 0 10; then ok "14. a policy that accepts everything: a warn line at start mentions the policy"
  else not_ok "14. a policy that accepts everything: a warn line at start mentions the policy" \
    "none within 10 s; logged: $(grep -F 'policy' "$T/acc.log" | grep -v '"msg":"access"' | tail -2 | cut -c1-250)"; fi
  alive "14" acc
else not_ok "14. proxy with an accept-everything policy starts" "$(tail -3 "$T/acc.log")"; fi
stop_bg acc

# ================================================================ 15. OCI answers under the gate
# A blob the upstream does not have is 404 BLOB_UNKNOWN under a policy too (not 403); where the
# matching rule accepts without signatures, blobs are served before any manifest was asked for
# (the distribution conformance suite's pull workflow asks blobs first).
# status_is DESC URL STATUS CODE
status_is() {
  fetch "$2"
  if [[ $CODE == "$3" && $ERR == "$4" ]]; then ok "$1"; else not_ok "$1" "want HTTP $3 code $4; got HTTP $CODE code '$ERR'"; fi
}
NOPE="sha256:$(printf 'no such blob' | sha256sum | cut -d' ' -f1)"
status_is "15. a blob the upstream lacks, under the require rule: 404 BLOB_UNKNOWN" \
  "http://${ADDR[main]}/v2/upstream.test/team/signed/blobs/$NOPE" 404 BLOB_UNKNOWN
printf 'open blob %s\n' "$RANDOM$RANDOM" >"$T/open.blob"
OPEN_D=$(sha_of "$T/open.blob")
if curl_push_blob "$UP" open/app "$T/open.blob" && curl_push_blob "$UP" team/closed "$T/open.blob"; then
  printf '{"keys":{"release":{"path":"%s"}},"rules":[{"match":"upstream.test/open/**","action":"accept"},%s' \
    "$T/release.pub" '{"match":"upstream.test/team/**","require":{"keys":["release"]}}],"default":"reject"}' \
    >"$T/pol/open.json"
  if start_proxy open --upstream "upstream.test=http://$UP" --policy "$T/pol/open.json" --admin-listen off; then
    served "15. accept rule: a blob before any manifest: 200 with its bytes" \
      "http://${ADDR[open]}/v2/upstream.test/open/app/blobs/$OPEN_D" "$OPEN_D"
    status_is "15. accept rule: a blob the upstream lacks: 404 BLOB_UNKNOWN" \
      "http://${ADDR[open]}/v2/upstream.test/open/app/blobs/$NOPE" 404 BLOB_UNKNOWN
    status_is "15. the same blob where signatures are required and no manifest passed: 403 DENIED" \
      "http://${ADDR[open]}/v2/upstream.test/team/closed/blobs/$OPEN_D" 403 DENIED
    alive "15" open
  else not_ok "15. proxy with an accept rule starts" "$(tail -3 "$T/open.log")"; fi
  stop_bg open
else not_ok "15. pushing the open blob upstream" "curl_push_blob failed"; fi

check_true "the main proxy ran to the end of the suite" "it exited" is_running main
finish
