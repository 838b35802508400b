#!/usr/bin/env bash
# The proxy must verify what the upstream sends. lying_upstream.py forwards to a real registry
# but flips one byte in every blob body and in every manifest fetched by digest (same length).
#   - a client must never receive a complete 200 body with wrong bytes;
#   - nothing wrong is cached: a second request goes upstream again.
source "$(dirname "$0")/lib.sh"
suite_init lying_upstream

start_upstream upstream || { not_ok "upstream registry starts" "see $T/upstream.log"; finish; }
UP=${ADDR[upstream]}
check "test images pushed into the upstream" push_images "$UP" || finish
LP=$(free_port)
start_bg lying "$PY" "$IT_DIR/lying_upstream.py" --port "$LP" --upstream "http://$UP" --stats-file "$T/lying-stats.json"
wait_http "http://127.0.0.1:$LP/_stats" 20 lying || { not_ok "lying upstream starts" "$(tail -3 "$T/lying.log")"; finish; }
ok "lying upstream starts"
L=127.0.0.1:$LP
start_proxy proxy --upstream "upstream.test=http://$L" ||
  { not_ok "proxy starts and answers GET /v2/" "$(tail -3 "$T/proxy.log")"; finish; }
ok "proxy starts and answers GET /v2/"
P=${ADDR[proxy]}

stat_of() { curl -fsS --max-time 10 "http://$L/_stats" | jq -r ".$1"; }
SMALLD=$(manifest_digest "$UP" lab/small v1)
SMALLBLOB=$(largest_layer "$UP" lab/small v1)   # busybox layer, ~1 MiB
BIGBLOB=$(largest_layer "$UP" lab/big v1)       # 200 MiB

# control: the liar really lies, and keeps the length
out=$(curl -sS --max-time 60 -o "$T/ctl.body" -w '%{http_code} %{size_download}' "http://$L/v2/lab/small/blobs/$SMALLBLOB")
len=$(curl -sS --max-time 60 -o /dev/null -w '%{size_download}' "http://$UP/v2/lab/small/blobs/$SMALLBLOB")
check_eq "control: lying upstream answers 200 with the full length" "200 $len" "$out"
check_true "control: lying upstream's blob bytes do not match the digest" "they match: the liar does not lie" \
  test "sha256:$(sha256sum <"$T/ctl.body" | cut -d' ' -f1)" != "$SMALLBLOB"

# Every judge: wrong_bytes_cut (lib.sh), 4 concurrent clients, each must be cut within 5 s of
# the liar's last byte.
# the big blob is in repo lab/big; the small one in lab/small (distribution checks blob links per repo)
g0=$(stat_of blob_gets)
check "GET small blob through the proxy (4 clients): every transfer cut promptly, none complete" \
  wrong_bytes_cut small1 "http://$P/v2/lab/small/blobs/$SMALLBLOB" "$SMALLBLOB" "http://$L/_stats"
sed "s/^/#   /" "$T/last.out" >&3
g1=$(stat_of blob_gets)
check_true "the proxy fetched the small blob upstream" "lying upstream blob GETs $g0 -> $g1" test "$g1" -gt "$g0"
check "GET small blob again (4 clients): every transfer cut promptly, none complete" \
  wrong_bytes_cut small2 "http://$P/v2/lab/small/blobs/$SMALLBLOB" "$SMALLBLOB" "http://$L/_stats"
g2=$(stat_of blob_gets)
check_true "second GET of the small blob went upstream again (bad bytes not cached)" "lying upstream blob GETs $g1 -> $g2" \
  test "$g2" -gt "$g1"

g0=$(stat_of blob_gets)
check "GET the 200 MiB blob through the proxy (streaming, 4 clients): every transfer cut promptly" \
  wrong_bytes_cut big1 "http://$P/v2/lab/big/blobs/$BIGBLOB" "$BIGBLOB" "http://$L/_stats"
sed "s/^/#   /" "$T/last.out" >&3
check "GET the 200 MiB blob again (4 clients): every transfer cut promptly" \
  wrong_bytes_cut big2 "http://$P/v2/lab/big/blobs/$BIGBLOB" "$BIGBLOB" "http://$L/_stats"
g1=$(stat_of blob_gets)
check_true "both GETs of the 200 MiB blob went upstream (bad bytes not cached)" "lying upstream blob GETs $g0 -> $g1" \
  test $((g1 - g0)) -ge 2

# manifest by digest whose bytes do not match: 502 UPSTREAM_INVALID, and not cached
m0=$(stat_of manifest_digest_gets)
check_eq "GET manifest by digest with mismatching upstream bytes: 502 UPSTREAM_INVALID" "502 UPSTREAM_INVALID" \
  "$(oci_status GET "http://$P/v2/lab/small/manifests/$SMALLD" -H "Accept: $ACCEPT_ALL")"
m1=$(stat_of manifest_digest_gets)
check_eq "second GET of the bad manifest: 502 UPSTREAM_INVALID again" "502 UPSTREAM_INVALID" \
  "$(oci_status GET "http://$P/v2/lab/small/manifests/$SMALLD" -H "Accept: $ACCEPT_ALL")"
m2=$(stat_of manifest_digest_gets)
check_true "both GETs of the bad manifest went upstream (not cached)" "lying manifest-by-digest GETs $m0 -> $m1 -> $m2" \
  test "$m1" -gt "$m0" -a "$m2" -gt "$m1"

# a different repo's manifest by digest, never fetched by tag: must be an error
LBD=$(manifest_digest "$UP" lab/big v1)
check_eq "GET lab/big manifest by digest (never fetched by tag) with mismatching bytes: 502 UPSTREAM_INVALID" \
  "502 UPSTREAM_INVALID" "$(oci_status GET "http://$P/v2/lab/big/manifests/$LBD" -H "Accept: $ACCEPT_ALL")"

# a skopeo pull through the lying upstream must fail
if sk copy -q --src-tls-verify=false "docker://$P/lab/small:v1" "oci:$T/pull:x" >"$T/last.out" 2>&1; then
  not_ok "skopeo pull of lab/small:v1 through the proxy in front of a liar fails" "it succeeded"
else
  ok "skopeo pull of lab/small:v1 through the proxy in front of a liar fails"
fi

# ---------------------------------------------------------------- upstream cuts blobs short
TP=$(free_port)
start_bg truncating "$PY" "$IT_DIR/lying_upstream.py" --truncate --port "$TP" --upstream "http://$UP"
wait_http "http://127.0.0.1:$TP/_stats" 20 truncating || not_ok "truncating upstream starts" "$(tail -3 "$T/truncating.log")"
start_proxy proxy-trunc --upstream "upstream.test=http://127.0.0.1:$TP" ||
  not_ok "second proxy (in front of the truncating upstream) starts" "$(tail -3 "$T/proxy-trunc.log")"
PT=${ADDR[proxy-trunc]}
tstat() { curl -fsS --max-time 10 "http://127.0.0.1:$TP/_stats" | jq -r ".$1"; }
t0=$(tstat blob_gets)
check "upstream cuts the 200 MiB blob at half (4 clients): every transfer cut promptly" \
  wrong_bytes_cut trunc1 "http://$PT/v2/lab/big/blobs/$BIGBLOB" "$BIGBLOB" "http://127.0.0.1:$TP/_stats"
sed "s/^/#   /" "$T/last.out" >&3
check "and again on a second request (4 clients)" \
  wrong_bytes_cut trunc2 "http://$PT/v2/lab/big/blobs/$BIGBLOB" "$BIGBLOB" "http://127.0.0.1:$TP/_stats"
t1=$(tstat blob_gets)
check_true "both requests went upstream (the half blob was not cached)" "truncating upstream blob GETs $t0 -> $t1" \
  test $((t1 - t0)) -ge 2
check_true "proxy still running after truncated upstream bodies" "$(tail -2 "$T/proxy-trunc.log")" is_running proxy-trunc

# by tag the liar is honest: the proxy still works
d=$(manifest_digest "$P" lab/multi v1 2>&1)
check_eq "manifest by tag (honest bytes) through the proxy is served with the right digest" \
  "$(manifest_digest "$UP" lab/multi v1)" "$d"

finish
