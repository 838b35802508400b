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

# blob_through_proxy NAME DIGEST : GET via the proxy; pass unless curl got a complete 200 body with wrong bytes
blob_through_proxy() {
  local name=$1 dg=$2 rc meta code size clen sum
  meta=$(curl -sS --max-time 600 -D "$T/$name.hdr" -o "$T/$name.body" -w '%{http_code} %{size_download}' \
         "http://$P/v2/lab/small/blobs/$dg" 2>"$T/$name.err")
  rc=$?
  code=${meta% *} size=${meta#* }
  clen=$(awk 'tolower($1)=="content-length:"{print $2}' "$T/$name.hdr" | tr -d '\r' | tail -1)
  sum=sha256:$(sha256sum <"$T/$name.body" | cut -d' ' -f1)
  log "$name: curl rc=$rc http=$code size=$size content-length=${clen:-none} body-sha256-ok=$([[ $sum == "$dg" ]] && echo yes || echo no) $(head -c 120 "$T/$name.err")"
  if [[ $sum == "$dg" ]]; then
    echo "body matches the digest (impossible through this liar?)"; return 0
  fi
  if [[ $rc == 0 && $code == 2* && ( -z $clen || $size == "$clen" ) ]]; then
    echo "complete HTTP $code body of $size bytes with wrong content (curl exit 0)"; return 1
  fi
  rm -f "$T/$name.body"
  return 0
}

# the big blob is in repo lab/big; the small one in lab/small (distribution checks blob links per repo)
g0=$(stat_of blob_gets)
check "GET small blob through the proxy: no complete 200 body with wrong bytes" blob_through_proxy small1 "$SMALLBLOB"
g1=$(stat_of blob_gets)
check_true "the proxy fetched the small blob upstream" "lying upstream blob GETs $g0 -> $g1" test "$g1" -gt "$g0"
check "GET small blob again: still no complete 200 body with wrong bytes" blob_through_proxy small2 "$SMALLBLOB"
g2=$(stat_of blob_gets)
check_true "second GET of the small blob went upstream again (bad bytes not cached)" "lying upstream blob GETs $g1 -> $g2" \
  test "$g2" -gt "$g1"

blob_big() { # like blob_through_proxy, in repo lab/big
  local rc meta code size clen sum
  meta=$(curl -sS --max-time 600 -D "$T/$1.hdr" -o "$T/$1.body" -w '%{http_code} %{size_download}' \
         "http://$P/v2/lab/big/blobs/$BIGBLOB" 2>"$T/$1.err")
  rc=$? code=${meta% *} size=${meta#* }
  clen=$(awk 'tolower($1)=="content-length:"{print $2}' "$T/$1.hdr" | tr -d '\r' | tail -1)
  sum=sha256:$(sha256sum <"$T/$1.body" | cut -d' ' -f1)
  rm -f "$T/$1.body"
  log "$1: curl rc=$rc http=$code size=$size content-length=${clen:-none} $(head -c 120 "$T/$1.err")"
  [[ $sum == "$BIGBLOB" ]] && return 0
  if [[ $rc == 0 && $code == 2* && ( -z $clen || $size == "$clen" ) ]]; then
    echo "complete HTTP $code body of $size bytes with wrong content (curl exit 0)"; return 1
  fi
  return 0
}
g0=$(stat_of blob_gets)
check "GET the 200 MiB blob through the proxy (streaming): no complete 200 body with wrong bytes" blob_big big1
check "GET the 200 MiB blob again: no complete 200 body with wrong bytes" blob_big big2
g1=$(stat_of blob_gets)
check_true "both GETs of the 200 MiB blob went upstream (bad bytes not cached)" "lying upstream blob GETs $g0 -> $g1" \
  test $((g1 - g0)) -ge 2

# manifest by digest whose bytes do not match
m0=$(stat_of manifest_digest_gets)
code=$(curl -sS --max-time 60 -o "$T/man1.body" -w '%{http_code}' -H "Accept: $ACCEPT_ALL" \
       "http://$P/v2/lab/small/manifests/$SMALLD" 2>"$T/man1.err")
sum=sha256:$(sha256sum <"$T/man1.body" | cut -d' ' -f1)
if [[ $code == 200 && $sum != "$SMALLD" ]]; then
  not_ok "GET manifest by digest with mismatching upstream bytes is an error" "HTTP 200 with a body of digest $sum"
elif [[ $code == 200 ]]; then
  not_ok "GET manifest by digest with mismatching upstream bytes is an error" "HTTP 200 with the right bytes, which the liar never sent?"
else
  ok "GET manifest by digest with mismatching upstream bytes is an error (HTTP $code)"
  errc=$(jq -r '.errors[0].code' "$T/man1.body" 2>/dev/null)
  check_true "the error is OCI JSON with a code" "body: $(head -c 200 "$T/man1.body")" test -n "$errc" -a "$errc" != null
fi
m1=$(stat_of manifest_digest_gets)
code2=$(curl -sS --max-time 60 -o "$T/man2.body" -w '%{http_code}' -H "Accept: $ACCEPT_ALL" \
        "http://$P/v2/lab/small/manifests/$SMALLD")
m2=$(stat_of manifest_digest_gets)
if [[ $code != 200 ]]; then
  check_true "second GET of the bad manifest went upstream again (not cached)" "lying manifest-by-digest GETs $m0 -> $m1 -> $m2" \
    test "$m1" -gt "$m0" -a "$m2" -gt "$m1"
  check_true "second GET of the bad manifest is an error too" "HTTP $code2" test "$code2" != 200
fi

# a different repo's manifest by digest, never fetched by tag: must be an error
LBD=$(manifest_digest "$UP" lab/big v1)
code=$(curl -sS --max-time 60 -o "$T/man3.body" -w '%{http_code}' -H "Accept: $ACCEPT_ALL" \
       "http://$P/v2/lab/big/manifests/$LBD")
check_true "GET lab/big manifest by digest (never fetched by tag) with mismatching bytes is an error" \
  "HTTP $code, body digest sha256:$(sha256sum <"$T/man3.body" | cut -d' ' -f1)" test "$code" != 200

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
trunc_get() { # NAME : pass unless curl got a complete 200 body
  local meta rc sum
  meta=$(curl -sS --max-time 300 -o "$T/$1.body" -w '%{http_code} %{size_download}' \
         "http://$PT/v2/lab/big/blobs/$BIGBLOB" 2>"$T/$1.err")
  rc=$?
  sum=sha256:$(sha256sum <"$T/$1.body" | cut -d' ' -f1); rm -f "$T/$1.body"
  echo "curl rc=$rc http/size=$meta $(head -c 100 "$T/$1.err")"
  [[ $sum == "$BIGBLOB" ]] && { echo "the full right blob (impossible through this upstream?)"; return 1; }
  [[ $rc == 0 && $meta == 2* ]] && { echo "complete 2xx body that is not the blob"; return 1; }
  return 0
}
t0=$(tstat blob_gets)
check "upstream cuts the 200 MiB blob at half: the client gets no complete 200 body" trunc_get trunc1
check "and again on a second request" trunc_get trunc2
t1=$(tstat blob_gets)
check_true "both requests went upstream (the half blob was not cached)" "truncating upstream blob GETs $t0 -> $t1" \
  test $((t1 - t0)) -ge 2
check_true "proxy still running after truncated upstream bodies" "$(tail -2 "$T/proxy-trunc.log")" is_running proxy-trunc

# by tag the liar is honest: the proxy still works
d=$(manifest_digest "$P" lab/multi v1 2>&1)
check_eq "manifest by tag (honest bytes) through the proxy is served with the right digest" \
  "$(manifest_digest "$UP" lab/multi v1)" "$d"

finish
