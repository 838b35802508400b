#!/usr/bin/env bash
# Caching behaviour, counted in the upstream's access log:
#   - a second pull of lab/big:v1 sends no blob GET (and, within the tag TTL, nothing) upstream;
#   - with the upstream stopped, cached images still pull by tag (within TTL) and by digest;
#   - tag TTL: a tag moved upstream is seen after the TTL; a stale tag is served while the
#     upstream is down (within --max-stale), and no longer after max-stale;
#   - 8 concurrent cold GETs of the 200 MiB blob: exactly one upstream blob GET, 8 intact bodies.
source "$(dirname "$0")/lib.sh"
suite_init cache

start_upstream upstream || { not_ok "upstream registry starts" "see $T/upstream.log"; finish; }
UP=${ADDR[upstream]}
ULOG=$T/upstream.log
check "test images pushed into the upstream" push_images "$UP" || finish
start_proxy proxy --upstream "upstream.test=http://$UP" --tag-ttl 600 --max-stale 3600 ||
  { not_ok "proxy starts and answers GET /v2/" "$(tail -3 "$T/proxy.log")"; finish; }
ok "proxy starts and answers GET /v2/"
P=${ADDR[proxy]}

BIGD=$(manifest_digest "$UP" lab/big v1) || { not_ok "upstream has lab/big:v1" "no digest"; finish; }
BIGBLOB=$(largest_layer "$UP" lab/big v1)
SMALLD=$(manifest_digest "$UP" lab/small v1)
nlayers=$(image_layers "$UP" lab/big v1 | wc -l)

# ---------------------------------------------------------------- warm, then hit
b0=$(upstream_blob_gets "$ULOG")
check "first skopeo pull of lab/big:v1 through the proxy" \
  sk copy -q --src-tls-verify=false "docker://$P/lab/big:v1" "oci:$T/pull1:x"
b1=$(upstream_blob_gets "$ULOG")
check_true "first pull fetched the blobs upstream (>= $nlayers layer GETs)" "upstream blob GETs: $((b1 - b0))" \
  test $((b1 - b0)) -ge "$nlayers"
r1=$(upstream_requests "$ULOG")
check "second skopeo pull of lab/big:v1 through the proxy" \
  sk copy -q --src-tls-verify=false "docker://$P/lab/big:v1" "oci:$T/pull2:x"
b2=$(upstream_blob_gets "$ULOG") r2=$(upstream_requests "$ULOG")
check_eq "second pull sent no blob GET upstream" 0 $((b2 - b1))
check_eq "second pull within the tag TTL sent no request upstream at all" 0 $((r2 - r1))
if ((r2 != r1)); then
  log "upstream requests during the second pull:"
  grep -E '^127\.0\.0\.1 - -' "$ULOG" | tail -n $((r2 - r1)) | cut -c1-200 | sed 's/^/#   /'
fi
d=$(manifest_digest "$P" lab/big v1 2>&1)
check_eq "cached lab/big:v1 digest equals upstream's" "$BIGD" "$d"

# ---------------------------------------------------------------- tag TTL / stale (second proxy)
start_proxy proxy-ttl --upstream "upstream.test=http://$UP" --tag-ttl 2 --max-stale 3600 ||
  not_ok "proxy with --tag-ttl 2 starts" "$(tail -3 "$T/proxy-ttl.log")"
PT=${ADDR[proxy-ttl]}
sk copy -q --dest-tls-verify=false "oci:$IMG_OCI:small" "docker://$UP/lab/moving:t" >/dev/null 2>&1
sk copy -q --dest-tls-verify=false --format v2s2 "oci:$IMG_OCI:small" "docker://$UP/lab/moving:t2" >/dev/null 2>&1
m1=$(manifest_digest "$UP" lab/moving t) m2=$(manifest_digest "$UP" lab/moving t2)
d=$(manifest_digest "$PT" lab/moving t 2>&1)
check_eq "ttl proxy serves lab/moving:t (first version)" "$m1" "$d"
# move the tag upstream: t now points to the v2s2 manifest
curl -fsS --max-time 30 -H "Accept: $ACCEPT_ALL" "http://$UP/v2/lab/moving/manifests/t2" >"$T/moving-t2.json"
curl -fsS --max-time 30 -o /dev/null -X PUT -H "Content-Type: application/vnd.docker.distribution.manifest.v2+json" \
  --data-binary "@$T/moving-t2.json" "http://$UP/v2/lab/moving/manifests/t"
check_eq "tag moved upstream (control)" "$m2" "$(manifest_digest "$UP" lab/moving t 2>&1)"
sleep 3
d=$(manifest_digest "$PT" lab/moving t 2>&1)
check_eq "after the tag TTL the proxy serves the moved tag" "$m2" "$d"
d=$(manifest_digest "$PT" lab/small v1 2>&1)
check_eq "ttl proxy serves lab/small:v1 (warm)" "$SMALLD" "$d"

# a third proxy whose stale window is short
start_proxy proxy-nostale --upstream "upstream.test=http://$UP" --tag-ttl 1 --max-stale 2 ||
  not_ok "proxy with --max-stale 2 starts" "$(tail -3 "$T/proxy-nostale.log")"
PN=${ADDR[proxy-nostale]}
d=$(manifest_digest "$PN" lab/small v1 2>&1)
check_eq "short-stale proxy serves lab/small:v1 (warm)" "$SMALLD" "$d"

# ---------------------------------------------------------------- upstream down
stop_bg upstream
code=$(http_status GET "http://$UP/v2/")
check_eq "upstream is stopped (control)" 000 "$code"
check "with the upstream down: skopeo pull lab/big:v1 by tag (within TTL)" \
  sk copy -q --src-tls-verify=false "docker://$P/lab/big:v1" "oci:$T/pull3:x"
check "with the upstream down: skopeo pull lab/big@digest" \
  sk copy -q --src-tls-verify=false "docker://$P/lab/big@$BIGD" "oci:$T/pull4:x"
d=$(manifest_digest "$P" lab/big "$BIGD" 2>&1)
check_eq "with the upstream down: GET manifest by digest" "$BIGD" "$d"
code=$(http_status GET "http://$P/v2/lab/big/blobs/$BIGBLOB")
check_eq "with the upstream down: GET the big blob" 200 "$code"
sleep 4   # past the TTL of proxy-ttl (2 s) and past TTL+max-stale of proxy-nostale (1+2 s)
d=$(manifest_digest "$PT" lab/small v1 2>&1)
check_eq "with the upstream down, TTL expired, within --max-stale: stale tag served" "$SMALLD" "$d"
code=$(http_status GET "http://$PT/v2/lab/small/manifests/$SMALLD" -H "Accept: $ACCEPT_ALL")
check_eq "with the upstream down: manifest by digest from the ttl proxy" 200 "$code"
check_eq "with the upstream down, past --max-stale: the tag is no longer served (503 UPSTREAM_UNAVAILABLE)" \
  "503 UPSTREAM_UNAVAILABLE" "$(oci_status GET "http://$PN/v2/lab/small/manifests/v1" -H "Accept: $ACCEPT_ALL")"
code=$(http_status GET "http://$PN/v2/lab/small/manifests/$SMALLD" -H "Accept: $ACCEPT_ALL")
check_eq "with the upstream down, past --max-stale: by digest still served (immutable)" 200 "$code"
check_eq "with the upstream down: an uncached tag is 503 UPSTREAM_UNAVAILABLE" \
  "503 UPSTREAM_UNAVAILABLE" "$(oci_status GET "http://$P/v2/lab/never-pulled/manifests/v1" -H "Accept: $ACCEPT_ALL")"
# the cache survives a restart of the proxy (same data dir), still with the upstream down
stop_bg proxy
if start_proxy proxy --upstream "upstream.test=http://$UP" --tag-ttl 600 --max-stale 3600; then
  check "after a proxy restart, upstream down: skopeo pull lab/big@digest from the persisted cache" \
    sk copy -q --src-tls-verify=false "docker://$P/lab/big@$BIGD" "oci:$T/pull5:x"
else
  not_ok "proxy restarts on its data dir" "$(tail -3 "$T/proxy.log")"
fi
stop_bg proxy-ttl
stop_bg proxy-nostale

# ---------------------------------------------------------------- 8 concurrent cold GETs
start_upstream upstream || { not_ok "upstream restarts" "$(tail -3 "$ULOG")"; finish; }
start_proxy proxy-cold --upstream "upstream.test=http://$UP" ||
  { not_ok "cold proxy (fresh data dir) starts" "$(tail -3 "$T/proxy-cold.log")"; finish; }
PC=${ADDR[proxy-cold]}
c0=$(upstream_blob_gets "$ULOG")
pids=()
for i in 1 2 3 4 5 6 7 8; do
  ( curl -sS --max-time 600 -D "$T/cc$i.hdr" "http://$PC/v2/lab/big/blobs/$BIGBLOB" 2>"$T/cc$i.err" |
      sha256sum | cut -d' ' -f1 >"$T/cc$i.sum"
    echo "${PIPESTATUS[0]}" >"$T/cc$i.rc" ) &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
c1=$(upstream_blob_gets "$ULOG")
check_eq "8 concurrent cold GETs of the 200 MiB blob: exactly 1 upstream blob GET" 1 $((c1 - c0))
good=0 bad=""
for i in 1 2 3 4 5 6 7 8; do
  st=$(head -1 "$T/cc$i.hdr" 2>/dev/null | awk '{print $2}')
  if [[ $(cat "$T/cc$i.rc") == 0 && $st == 200 && sha256:$(cat "$T/cc$i.sum") == "$BIGBLOB" ]]; then
    good=$((good + 1))
  else
    bad+=" #$i(rc=$(cat "$T/cc$i.rc") http=$st $(head -c 80 "$T/cc$i.err"))"
  fi
done
check_eq "8 concurrent cold GETs: all 8 bodies complete with sha256 = digest" 8 "$good${bad:+ /$bad}"
c2=$(upstream_blob_gets "$ULOG")
code=$(curl -sS --max-time 300 -o /dev/null -w '%{http_code}' "http://$PC/v2/lab/big/blobs/$BIGBLOB")
c3=$(upstream_blob_gets "$ULOG")
check_eq "a 9th GET after the concurrent ones is a cache hit (200, no upstream GET)" "200 0" "$code $((c3 - c2))"


# ---------------------------------------------------------------- client hangs up mid-transfer (cold)
start_proxy proxy-abort --upstream "upstream.test=http://$UP" ||
  { not_ok "proxy-abort (fresh data dir) starts" "$(tail -3 "$T/proxy-abort.log")"; finish; }
PA=${ADDR[proxy-abort]}
a0=$(upstream_blob_gets "$ULOG")
curl -sS --max-time 120 "http://$PA/v2/lab/big/blobs/$BIGBLOB" 2>/dev/null | head -c 5000000 >/dev/null
sleep 1
sum=$(curl -sS --max-time 300 "http://$PA/v2/lab/big/blobs/$BIGBLOB" | sha256sum | cut -d' ' -f1)
check_eq "after a client hung up mid-transfer, the next GET gets the whole blob with the right digest" "$BIGBLOB" "sha256:$sum"
sum=$(curl -sS --max-time 300 "http://$PA/v2/lab/big/blobs/$BIGBLOB" | sha256sum | cut -d' ' -f1)
a1=$(upstream_blob_gets "$ULOG")
check_eq "... and the GET after that too" "$BIGBLOB" "sha256:$sum"
check_true "the hang-up cost at most 2 upstream blob GETs in all" "upstream blob GETs: $((a1 - a0))" test $((a1 - a0)) -le 2

finish
