#!/usr/bin/env bash
# OCI pull-workflow edges (the distribution conformance suite's pull workflow), no policy,
# against a real docker-registry upstream (distribution 2.8: no referrers API, tags/list
# ignores n and last) and a paginating forwarder (lying_upstream.py --honest --paginate-tags):
#   1. a tag-shaped reference that is not a valid tag -> 404 MANIFEST_UNKNOWN, the message
#      names the tag grammar; a malformed digest-like reference (with ':') -> 400 DIGEST_INVALID
#   2. referrers/<digest> -> always 200 with an OCI index (Content-Type
#      application/vnd.oci.image.index.v1+json): built from the sha256-<hex> fallback tag
#      index, else empty; ?artifactType=X filters it and sets OCI-Filters-Applied:
#      artifactType; a malformed digest -> 400 DIGEST_INVALID; upstream down -> 503
#      UPSTREAM_UNAVAILABLE
#   3. tags/list?n=N&last=T -> at most N tags in lexical order and Link: </v2/<name as
#      asked>/tags/list?n=N&last=...>; rel="next" while there are more, also when the upstream
#      ignores n (distribution 2.8 also lists tags unsorted); tags <= T dropped;
#      an invalid n -> 400; a paginating upstream's Link still points back at the proxy (ns= kept)
source "$(dirname "$0")/lib.sh"
suite_init oci_pull

HP=$IT_DIR/hostile_push.py
SIGTYPE=application/vnd.dev.cosign.artifact.sig.v1+json
SBOMTYPE=application/spdx+json
INDEX=application/vnd.oci.image.index.v1+json
GRAMMAR='[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}'

start_upstream upstream || { not_ok "upstream registry starts" "see $T/upstream.log"; finish; }
UP=${ADDR[upstream]}
hpush() { "$PY" "$HP" "http://$UP" "$@"; }
j() { jq -r ".$2" <<<"$1"; }
ref() { echo "$(j "$1" digest):$(j "$1" size)"; }

# the subject image, two artifacts about it, the fallback index listing them; a second image
# without referrers; five tags of one image
if IMG=$(hpush team/app image --seed subject --tag v1) &&
   NOREF=$(hpush team/app image --seed lonely --tag lonely) &&
   S1=$(hpush team/app image --seed sig-artifact --extra '{"artifactType":"'$SIGTYPE'"}') &&
   S2=$(hpush team/app image --seed sbom-artifact --extra '{"artifactType":"'$SBOMTYPE'"}') &&
   FB=$(hpush team/app index --child "$(ref "$S1")::$SIGTYPE" --child "$(ref "$S2")::$SBOMTYPE" \
          --tag "sha256-$(j "$IMG" digest | cut -d: -f2)") &&
   hpush team/tags image --seed tags --tag t1 --tag t2 --tag t3 --tag t4 --tag t5 >/dev/null; then
  ok "images, artifacts and the fallback index pushed into the upstream"
else not_ok "images, artifacts and the fallback index pushed into the upstream" "hostile_push.py failed"; finish; fi
check_eq "(the upstream has no referrers API: 404)" 404 \
  "$(http_status GET "http://$UP/v2/team/app/referrers/$(j "$IMG" digest)" -H "Accept: $INDEX")"
ups=$(curl -fsS --max-time 30 "http://$UP/v2/team/tags/tags/list?n=2" | jq -r '.tags | length')
log "for reference, distribution answers tags/list?n=2 with $ups tags"

PGP=$(free_port)
start_bg pag-upstream "$PY" "$IT_DIR/lying_upstream.py" --honest --paginate-tags --port "$PGP" --upstream "http://$UP"
wait_http "http://127.0.0.1:$PGP/v2/" 20 pag-upstream ||
  { not_ok "paginating forwarder starts" "$(tail -3 "$T/pag-upstream.log")"; finish; }
start_proxy proxy --upstream "upstream.test=http://$UP" --upstream "pag.test=http://127.0.0.1:$PGP" \
  --admin-listen off || { not_ok "proxy starts" "$(tail -3 "$T/proxy.log")"; finish; }
ok "proxy starts (no policy)"
P=${ADDR[proxy]}

# req METHOD PATH [curl args] : CODE, ERR, MSG, body in $BODY, headers in $HDR
BODY=$T/resp.body HDR=$T/resp.hdr
req() {
  local m=$1 path=$2; shift 2
  local mflag=(-X "$m") out=$BODY
  [[ $m == HEAD ]] && mflag=(--head) out=/dev/null
  : >"$BODY"; : >"$HDR"
  CODE=$(curl -sS --path-as-is --max-time 60 "${mflag[@]}" -D "$HDR" -o "$out" -w '%{http_code}' "$@" "http://$P$path" 2>"$T/curl.err")
  ERR=$(jq -r '.errors[0].code // empty' "$BODY" 2>/dev/null)
  MSG=$(jq -r '.errors[0].message // empty' "$BODY" 2>/dev/null)
}
hdr() { awk -v h="$(tr 'A-Z' 'a-z' <<<"$1"):" 'tolower($1)==h{ $1=""; sub(/^ /,""); print }' "$HDR" | tr -d '\r' | tail -1; }
link_target() { sed -E 's/^<([^>]*)>.*/\1/' <<<"$(hdr Link)"; }

# ---------------------------------------------------------------- 1. tag grammar
for bad in .INVALID_MANIFEST_NAME -x .x "$(printf 'a%.0s' $(seq 129))"; do
  req GET "/v2/team/app/manifests/$bad" -H "Accept: $ACCEPT_ALL"
  check_eq "1. manifest reference '${bad:0:24}' (not a valid tag) -> 404 MANIFEST_UNKNOWN" "404 MANIFEST_UNKNOWN" "$CODE $ERR"
  check_true "1. ... the message names the tag grammar" "message: $MSG" grep -qF -- "$GRAMMAR" <<<"$MSG"
done
req HEAD /v2/team/app/manifests/.INVALID_MANIFEST_NAME -H "Accept: $ACCEPT_ALL"
check_eq "1. HEAD of it -> 404" 404 "$CODE"
for bad in sha256:zz "sha256:$(printf 'A%.0s' $(seq 64))" foo:bar; do
  req GET "/v2/team/app/manifests/$bad" -H "Accept: $ACCEPT_ALL"
  check_eq "1. digest-like reference '$bad' -> 400 DIGEST_INVALID" "400 DIGEST_INVALID" "$CODE ${ERR}"
done
req GET /v2/team/app/manifests/v1 -H "Accept: $ACCEPT_ALL"
check_eq "1. (control) a valid tag is served" "200 $(j "$IMG" digest)" "$CODE $(sha_of "$BODY")"

# ---------------------------------------------------------------- 2. referrers
# index_ok : 200, the index Content-Type, an OCI index body; prints the listed digests, sorted
index_digests() {
  [[ $CODE == 200 ]] || { echo "HTTP $CODE"; return; }
  [[ $(hdr Content-Type) == "$INDEX" ]] || { echo "Content-Type $(hdr Content-Type)"; return; }
  jq -r 'if .schemaVersion == 2 and .mediaType == "'$INDEX'" and (.manifests | type) == "array"
         then ([.manifests[].digest] | sort | join(",")) else "not an OCI index" end' "$BODY" 2>/dev/null ||
    echo "not JSON"
}
SUBJ=$(j "$IMG" digest)
req GET "/v2/team/app/referrers/$SUBJ"
check_eq "2. referrers of team/app:v1 (fallback tag): 200, OCI index of both artifacts" \
  "$(printf '%s\n' "$(j "$S1" digest)" "$(j "$S2" digest)" | sort | paste -sd,)" "$(index_digests)"
check_eq "2. ... the artifactTypes are kept" "$SBOMTYPE,$SIGTYPE" \
  "$(jq -r '[.manifests[].artifactType] | sort | join(",")' "$BODY" 2>/dev/null)"
check_eq "2. ... no OCI-Filters-Applied without a filter" "" "$(hdr OCI-Filters-Applied)"
req GET "/v2/team/app/referrers/$SUBJ?artifactType=$(jq -rn --arg s "$SIGTYPE" '$s|@uri')"
check_eq "2. ?artifactType=cosign sig: only the signature" "$(j "$S1" digest)" "$(index_digests)"
check_eq "2. ... with OCI-Filters-Applied: artifactType" artifactType "$(hdr OCI-Filters-Applied)"
req GET "/v2/upstream.test/team/app/referrers/$SUBJ?artifactType=application/none"
check_eq "2. ?artifactType=application/none (path prefix name): an empty index" "" "$(index_digests)"
check_eq "2. ... with OCI-Filters-Applied: artifactType" artifactType "$(hdr OCI-Filters-Applied)"
req GET "/v2/team/app/referrers/$(j "$NOREF" digest)"
check_eq "2. referrers of an image without any: 200, an empty OCI index" "" "$(index_digests)"
req GET "/v2/team/app/referrers/sha256:$(printf '1%.0s' $(seq 64))"
check_eq "2. referrers of an unknown digest: 200, an empty OCI index" "" "$(index_digests)"
req HEAD "/v2/team/app/referrers/$SUBJ"
check_eq "2. HEAD referrers -> 200" 200 "$CODE"
req GET /v2/team/app/referrers/sha256:zz
check_eq "2. referrers of a malformed digest -> 400 DIGEST_INVALID" "400 DIGEST_INVALID" "$CODE $ERR"

# ---------------------------------------------------------------- 3. tags/list
ALL=t1,t2,t3,t4,t5
# walk PATH-PREFIX QUERY-EXTRA : follows Links from ?n=2; prints "pages|tags"; checks each page
walk() {
  local pfx=$1 extra=$2 next="$1/tags/list?n=2$2" pages=0 tags=() i
  for i in 1 2 3 4 5 6; do
    req GET "$next"
    [[ $CODE == 200 ]] || { echo "HTTP $CODE on $next"; return; }
    local got
    got=$(jq -r '.tags | length' "$BODY")
    ((got <= 2)) || { echo "page $i has $got tags"; return; }
    mapfile -t -O "${#tags[@]}" tags < <(jq -r '.tags[]' "$BODY")
    pages=$((pages + 1))
    [[ -n $(hdr Link) ]] || break
    grep -qE "^<$pfx/tags/list\?n=2&last=[^>&]+${extra}>; rel=\"next\"$" <<<"$(hdr Link)" ||
      { echo "bad Link on page $i: $(hdr Link)"; return; }
    next=$(link_target)
  done
  echo "$pages|$(IFS=,; echo "${tags[*]}")"
}
check_eq "3. distribution (ignores n): ?n=2 walks 3 pages via Link, every tag once, in order" "3|$ALL" \
  "$(walk /v2/team/tags "")"
check_eq "3. ... under the path prefix name, the Links keep it" "3|$ALL" "$(walk /v2/upstream.test/team/tags "")"
check_eq "3. paginating upstream via ?ns=pag.test: 3 pages, ns= kept in the Links" "3|$ALL" \
  "$(walk /v2/team/tags "&ns=pag.test")"
req GET '/v2/team/tags/tags/list?n=2'
check_eq "3. ?n=2 -> exactly t1,t2" "200 t1,t2" "$CODE $(jq -r '.tags | join(",")' "$BODY" 2>/dev/null)"
check_eq "3. ... Link to the next page" '</v2/team/tags/tags/list?n=2&last=t2>; rel="next"' "$(hdr Link)"
req GET '/v2/team/tags/tags/list?last=t3'
check_eq "3. ?last=t3 (upstream ignores last) -> t4,t5, no Link" "200 t4,t5 " \
  "$CODE $(jq -r '.tags | join(",")' "$BODY" 2>/dev/null) $(hdr Link)"
req GET '/v2/team/tags/tags/list?n=10'
check_eq "3. ?n=10 (more than there are) -> every tag, no Link" "200 $ALL " \
  "$CODE $(jq -r '.tags | join(",")' "$BODY" 2>/dev/null) $(hdr Link)"
req GET '/v2/team/tags/tags/list'
check_eq "3. no n -> every tag (in the upstream's order)" "200 $ALL" "$CODE $(jq -r '.tags | sort | join(",")' "$BODY" 2>/dev/null)"
for bad in -1 abc 1.5 ''; do
  req GET "/v2/team/tags/tags/list?n=$bad"
  check_true "3. ?n='$bad' -> 400 with an OCI error" "HTTP $CODE code '$ERR'" test "$CODE" = 400 -a -n "$ERR"
  log "?n='$bad' answered $CODE $ERR"
done

check_true "the proxy still runs" "it exited: $(tail -2 "$T/proxy.log" | tr '\n' ' ')" is_running proxy

# ---------------------------------------------------------------- upstream down (last)
stop_bg upstream
req GET "/v2/team/app/referrers/$SUBJ"
check_eq "2. referrers with the upstream down -> 503 UPSTREAM_UNAVAILABLE" "503 UPSTREAM_UNAVAILABLE" "$CODE $ERR"
req GET /v2/team/tags/tags/list?n=2
check_eq "3. tags/list with the upstream down -> 503 UPSTREAM_UNAVAILABLE" "503 UPSTREAM_UNAVAILABLE" "$CODE $ERR"
finish
