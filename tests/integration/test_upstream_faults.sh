#!/usr/bin/env bash
# The proxy in front of a hostile or broken upstream (faulty_upstream.py, one behaviour per
# repository name): resets and stalls mid-body, lying Content-Lengths, 5xx storms, 429,
# redirect loops, invalid JSON and JSON of the wrong types in every JSON answer, token
# services answering {"token": 1}. After every request:
#   - the proxy process is still alive and answers GET /v2/;
#   - the answer is an OCI error JSON with the expected status and code:
#       502 UPSTREAM_INVALID     the upstream answered something invalid or lying
#       503 UPSTREAM_UNAVAILABLE unreachable, 5xx, timeouts, connections cut (a Content-Length
#                                longer than the body is a cut connection, too)
#       429 TOOMANYREQUESTS      with a Retry-After header
#     or, for a blob whose body had begun, a connection cut before the advertised length
#     (curl exit 18/56/92), promptly (--upstream-timeout 3);
#   - nothing of a faulty answer is cached (admin cache ls), and a repeated request goes
#     upstream again.
# Fetch limits (review M6; the proxy runs with --fetch-deadline 6 --max-blob-bytes 8 MiB): a
# layer trickled a byte every 0.2 s is cut at the deadline, a Content-Length of 10^12 is
# answered 403 LIMIT_EXCEEDED, a chunked body without end is cut past 8 MiB; each time the
# upstream connection is closed and the fetch's slot freed. A second proxy with 3 fetch slots:
# 3 clients that hang up after the headers of 3 endless blobs do not keep a 4th client's
# cold pull from its blob (the fetch without a reader for the longest is cancelled). A third
# proxy with two upstreams: a client slower than its upstream, served through while the other
# upstream's fetch of the same layer trickles, gets the whole layer.
source "$(dirname "$0")/lib.sh"
suite_init upstream_faults

FP=$(free_port)
start_bg faulty "$PY" "$IT_DIR/faulty_upstream.py" --port "$FP" --stall 20
wait_http "http://127.0.0.1:$FP/_info" 20 faulty || { not_ok "faulty upstream starts" "$(tail -3 "$T/faulty.log")"; finish; }
ok "faulty upstream starts"
F=127.0.0.1:$FP
curl -fsS --max-time 10 "http://$F/_info" >"$T/info.json" || { not_ok "faulty upstream /_info" "no answer"; finish; }

AP=$(free_port)
TOK=$T/admin.token
(umask 077; head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$TOK")
start_proxy proxy --upstream "faulty.test=http://$F" --upstream-timeout 3 \
  --fetch-deadline 6 --max-blob-bytes 8388608 --admin-listen "127.0.0.1:$AP" --admin-token-file "$TOK" ||
  { not_ok "proxy starts in front of the faulty upstream" "$(tail -3 "$T/proxy.log")"; finish; }
ok "proxy starts in front of the faulty upstream"
P=${ADDR[proxy]}

info() { jq -r ".modes[\"$1\"].$2" "$T/info.json"; }
stat_of() { curl -fsS --max-time 10 "http://$F/_stats" | jq -r ".[\"$1\"].$2"; }

# alive : the proxy process runs and answers GET /v2/ with 200
alive() {
  is_running proxy || { echo "the proxy process is gone: $(tail -2 "$T/proxy.log")"; return 1; }
  local code
  code=$(curl -s -o /dev/null --max-time 10 -w '%{http_code}' "http://$P/v2/")
  [[ $code == 200 ]] || { echo "GET /v2/ answered '$code'"; return 1; }
}

# expect_error STATUS CODE METHOD PATH : the proxy answers STATUS with an OCI error CODE (GET:
# in the body; HEAD: status only), and stays alive
expect_error() {
  local want=$1 wcode=$2 method=$3 path=$4 got code args=()
  [[ $method == HEAD ]] && args=(-I)
  got=$(curl -s "${args[@]}" --max-time 30 -D "$T/e.hdr" -o "$T/e.body" -w '%{http_code}' \
        -H "Accept: $ACCEPT_ALL" "http://$P$path")
  if [[ $got != "$want" ]]; then echo "HTTP '$got', want $want; body: $(head -c 200 "$T/e.body")"; return 1; fi
  if [[ $method != HEAD ]]; then
    code=$(jq -r '.errors[0].code' "$T/e.body" 2>/dev/null)
    [[ $code == "$wcode" ]] || { echo "error code '$code', want $wcode; body: $(head -c 200 "$T/e.body")"; return 1; }
  fi
  if grep -qi '^EXCEPTION_WHAT' "$T/e.hdr"; then echo "an EXCEPTION_WHAT header"; return 1; fi
  alive
}

# expect_cut PATH DIGEST : a GET of the blob never completes with wrong bytes: either an OCI
# error status, or a connection cut (curl 18/56/92) before the advertised length, within 20 s
expect_cut() {
  local path=$1 dg=$2 meta rc code size clen sum t0 t1
  t0=$(date +%s)
  meta=$(curl -sS --max-time 40 -D "$T/c.hdr" -o "$T/c.body" -w '%{http_code} %{size_download}' \
         "http://$P$path" 2>"$T/c.err")
  rc=$? t1=$(date +%s)
  code=${meta% *} size=${meta#* }
  clen=$(awk 'tolower($1)=="content-length:"{print $2}' "$T/c.hdr" | tr -d '\r' | tail -1)
  sum=sha256:$(sha256sum <"$T/c.body" | cut -d' ' -f1)
  log "cut $path: curl rc=$rc http=$code size=$size content-length=${clen:-none} $((t1 - t0))s $(head -c 100 "$T/c.err")"
  if [[ $rc == 0 && $code == 2* ]]; then
    if [[ $sum == "$dg" ]]; then echo "a complete body with the right bytes: the fault did not reach the client?"
    else echo "a complete HTTP $code body of $size bytes with wrong bytes"; fi
    return 1
  fi
  if [[ $rc == 0 ]]; then
    [[ $code -ge 400 ]] && jq -e '.errors[0].code' "$T/c.body" >/dev/null 2>&1 ||
      { echo "HTTP $code without an OCI error body"; return 1; }
  else
    [[ $rc == 18 || $rc == 56 || $rc == 92 ]] || { echo "curl exit $rc (28 = the proxy never cut the connection)"; return 1; }
    [[ -n $clen && $size -lt $clen ]] || { echo "cut, but $size bytes of a Content-Length of ${clen:-none}"; return 1; }
  fi
  (( t1 - t0 <= 20 )) || { echo "took $((t1 - t0)) s: not a prompt cut"; return 1; }
  alive
}

# ---------------------------------------------------------------- control: honest upstream
HM=$(info honest manifest) HL=$(info honest layer) HS=$(info honest layer_size)
code=$(curl -s -o "$T/h.man" -w '%{http_code}' -H "Accept: $ACCEPT_ALL" "http://$P/v2/honest/app/manifests/v1")
check_eq "control: honest manifest by tag through the proxy" "200 $HM" "$code $(sha_of "$T/h.man")"
code=$(curl -s -o "$T/h.blob" -w '%{http_code}' "http://$P/v2/honest/app/blobs/$HL")
check_eq "control: honest layer through the proxy" "200 $HL" "$code $(sha_of "$T/h.blob")"
hcl=$(curl -s -I "http://$P/v2/honest/app/blobs/$HL" | awk 'tolower($1)=="content-length:"{print $2}' | tr -d '\r')
check_eq "control: HEAD of the honest layer has its Content-Length" "$HS" "$hcl"
code=$(curl -s -o "$T/h.tags" -w '%{http_code}' "http://$P/v2/honest/app/tags/list")
check_eq "control: honest tags/list" "200 v1" "$code $(jq -r '.tags|join(",")' "$T/h.tags" 2>/dev/null)"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://$P/v2/honest/app/referrers/$HM")
check_eq "control: honest referrers" 200 "$code"

# ---------------------------------------------------------------- bodies cut, stalled, mislabelled
for mode in reset-body stall-body long-cl; do
  check "$mode: manifest by tag -> 503 UPSTREAM_UNAVAILABLE" expect_error 503 UPSTREAM_UNAVAILABLE GET "/v2/$mode/app/manifests/v1"
  check "$mode: manifest by digest -> 503 UPSTREAM_UNAVAILABLE" \
    expect_error 503 UPSTREAM_UNAVAILABLE GET "/v2/$mode/app/manifests/$(info "$mode" manifest)"
done
check "short-cl: manifest by tag (half the bytes, digest header of all) -> 502 UPSTREAM_INVALID" \
  expect_error 502 UPSTREAM_INVALID GET /v2/short-cl/app/manifests/v1
check "short-cl: manifest by digest -> 502 UPSTREAM_INVALID" \
  expect_error 502 UPSTREAM_INVALID GET "/v2/short-cl/app/manifests/$(info short-cl manifest)"
for mode in reset-body stall-body short-cl long-cl; do
  L=$(info "$mode" layer)
  check "$mode: GET layer never completes with wrong bytes, cut promptly" expect_cut "/v2/$mode/app/blobs/$L" "$L"
  g0=$(stat_of "$mode" blob)
  check "$mode: GET layer again: the same" expect_cut "/v2/$mode/app/blobs/$L" "$L"
  g1=$(stat_of "$mode" blob)
  check_true "$mode: the second GET went upstream again (nothing cached)" "upstream blob GETs $g0 -> $g1" test "$g1" -gt "$g0"
done

# several clients of one stalled blob: every one is cut promptly
L=$(info stall-body layer)
concurrent_cut_isolated() {
  local i pids=() rc=0 t0 t1
  t0=$(date +%s)
  for i in 1 2 3 4 5 6; do
    curl -sS --max-time 40 -o "$T/cc.$i.body" -D "$T/cc.$i.hdr" -w '%{http_code} %{size_download}' \
      "http://$P/v2/stall-body/app/blobs/$L" >"$T/cc.$i.meta" 2>/dev/null &
    pids+=($!)
  done
  for i in "${!pids[@]}"; do
    wait "${pids[$i]}"
    echo "$?" >"$T/cc.$((i + 1)).rc"
  done
  t1=$(date +%s)
  for i in 1 2 3 4 5 6; do
    local r meta clen
    r=$(cat "$T/cc.$i.rc") meta=$(cat "$T/cc.$i.meta")
    clen=$(awk 'tolower($1)=="content-length:"{print $2}' "$T/cc.$i.hdr" | tr -d '\r' | tail -1)
    if [[ $r == 0 && $meta == 2* ]]; then echo "client $i: a complete body ($meta)"; rc=1; fi
    if [[ $r != 0 && $r != 18 && $r != 56 && $r != 92 ]]; then echo "client $i: curl exit $r"; rc=1; fi
    if [[ $r == 0 && ${meta%% *} -lt 400 ]]; then echo "client $i: HTTP $meta"; rc=1; fi
    log "concurrent client $i: rc=$r http/size=$meta content-length=${clen:-none}"
  done
  (( t1 - t0 <= 25 )) || { echo "the clients took $((t1 - t0)) s"; rc=1; }
  alive || rc=1
  return $rc
}
check "stall-body: 6 concurrent clients of one stalled layer are all cut promptly" concurrent_cut_isolated

# ---------------------------------------------------------------- 5xx storm, 429, redirects
storm() {
  local i pids=() rc=0 path
  for i in $(seq 1 24); do
    case $((i % 4)) in
      0) path=/v2/5xx/app/manifests/v1 ;;
      1) path=/v2/5xx/app/blobs/$(info 5xx layer) ;;
      2) path=/v2/5xx/app/tags/list ;;
      3) path=/v2/5xx/app/referrers/$(info 5xx manifest) ;;
    esac
    curl -s --max-time 30 -o "$T/s.$i.body" -w '%{http_code}' "http://$P$path" >"$T/s.$i.code" &
    pids+=($!)
  done
  for i in "${!pids[@]}"; do wait "${pids[$i]}"; done
  for i in $(seq 1 24); do
    local c e
    c=$(cat "$T/s.$i.code") e=$(jq -r '.errors[0].code' "$T/s.$i.body" 2>/dev/null)
    [[ $c == 503 && $e == UPSTREAM_UNAVAILABLE ]] || { echo "request $i: HTTP $c $e"; rc=1; }
  done
  alive || rc=1
  return $rc
}
check "5xx storm: 24 concurrent requests (manifest, blob, tags, referrers) -> 503 UPSTREAM_UNAVAILABLE each" storm
check "5xx: HEAD layer -> 503" expect_error 503 UPSTREAM_UNAVAILABLE HEAD "/v2/5xx/app/blobs/$(info 5xx layer)"

for path in /v2/429/app/manifests/v1 "/v2/429/app/blobs/$(info 429 layer)" /v2/429/app/tags/list; do
  check "429: GET ${path#/v2/429/app/} -> 429 TOOMANYREQUESTS" expect_error 429 TOOMANYREQUESTS GET "$path"
  check_true "429: GET ${path#/v2/429/app/} carries Retry-After" "headers: $(tr '\r\n' '  ' <"$T/e.hdr")" \
    grep -qi '^Retry-After: *[0-9]' "$T/e.hdr"
done

for mode in redirect-loop redirect-bad; do
  for path in /v2/$mode/app/manifests/v1 "/v2/$mode/app/blobs/$(info "$mode" layer)" /v2/$mode/app/tags/list; do
    check "$mode: GET ${path#/v2/$mode/app/} -> 502 UPSTREAM_INVALID" expect_error 502 UPSTREAM_INVALID GET "$path"
  done
done

# ---------------------------------------------------------------- JSON: invalid and wrong types
for mode in bad-json wrong-types; do
  check "$mode: manifest by tag -> 502 UPSTREAM_INVALID" expect_error 502 UPSTREAM_INVALID GET "/v2/$mode/app/manifests/v1"
  check "$mode: manifest by digest -> 502 UPSTREAM_INVALID" \
    expect_error 502 UPSTREAM_INVALID GET "/v2/$mode/app/manifests/$(info "$mode" manifest)"
  check "$mode: tags/list -> 502 UPSTREAM_INVALID" expect_error 502 UPSTREAM_INVALID GET "/v2/$mode/app/tags/list"
  check "$mode: referrers -> 502 UPSTREAM_INVALID" \
    expect_error 502 UPSTREAM_INVALID GET "/v2/$mode/app/referrers/$(info "$mode" manifest)"
  check "$mode: blob 404 with a broken error body -> 404 BLOB_UNKNOWN" \
    expect_error 404 BLOB_UNKNOWN GET "/v2/$mode/app/blobs/$(info "$mode" layer)"
done

for kind in int null array badjson; do
  mode=token-$kind
  for path in /v2/$mode/app/manifests/v1 "/v2/$mode/app/blobs/$(info "$mode" layer)" /v2/$mode/app/tags/list; do
    check "$mode: GET ${path#/v2/$mode/app/} -> 502 UPSTREAM_INVALID" expect_error 502 UPSTREAM_INVALID GET "$path"
  done
done
check_true "the token service was asked (the token modes reached it)" "token requests: $(stat_of token-int token)" \
  test "$(stat_of token-int token)" -ge 1
check "token-500: GET manifest -> 503 UPSTREAM_UNAVAILABLE" expect_error 503 UPSTREAM_UNAVAILABLE GET /v2/token-500/app/manifests/v1
check "token-500: GET layer -> 503 UPSTREAM_UNAVAILABLE" \
  expect_error 503 UPSTREAM_UNAVAILABLE GET "/v2/token-500/app/blobs/$(info token-500 layer)"

check "HEAD of a blob whose upstream HEAD has no Content-Length -> 502" \
  expect_error 502 UPSTREAM_INVALID HEAD "/v2/head-no-cl/app/blobs/$(info head-no-cl layer)"
check_true "and it does not claim Content-Length: 0" "headers: $(tr '\r\n' '  ' <"$T/e.hdr")" \
  bash -c "! grep -qi '^Content-Length: *0' '$T/e.hdr'"
check "invalid UTF-8 in the path -> 400 OCI error (not 500)" expect_error 400 INVALID_ARGUMENT GET '/v2/%FF'
check "invalid UTF-8 in the repository name -> 400 NAME_INVALID" expect_error 400 NAME_INVALID GET '/v2/%FF/manifests/v1'
check "a catalog request -> 404 NOT_FOUND from the proxy" expect_error 404 NOT_FOUND GET /v2/_catalog

# ---------------------------------------------------------------- fetch limits (review M6)
# upstream_closed MODE N : the faulty upstream saw N of its endless answers closed by the proxy (5 s)
upstream_closed() {
  local i got
  for i in $(seq 1 50); do
    got=$(stat_of "$1" closed)
    [[ $got -ge $2 ]] && return 0
    sleep 0.1
  done
  echo "the upstream saw $got closed connections of $1, want $2"
  return 1
}
# fetches_idle : the admin API reports no fetch running and no pending bytes (10 s)
fetches_idle() {
  local i s
  for i in $(seq 1 100); do
    s=$(curl -fsS --max-time 10 -H "Authorization: Bearer $(head -1 "$TOK")" "http://127.0.0.1:$AP/api/v1/cache/stats")
    [[ $(jq -r '"\(.inflight_fetches) \(.pending_bytes)"' <<<"$s") == "0 0" ]] && return 0
    sleep 0.1
  done
  echo "cache stats: $s"
  return 1
}
L=$(info trickle layer)
t0=$(date +%s)
check "trickle: GET layer (a byte every 0.2 s) is cut, not served for ever" expect_cut "/v2/trickle/app/blobs/$L" "$L"
t1=$(date +%s)
check_true "trickle: the cut came from the 6 s fetch deadline" "$((t1 - t0)) s; log: $(grep -i deadline "$T/proxy.log" | tail -1 | head -c 300)" \
  bash -c "(( $t1 - $t0 >= 5 )) && grep -q 'within its deadline' '$T/proxy.log'"
check "trickle: the upstream connection was closed" upstream_closed trickle 1
check "trickle: the slot is free and nothing is pending" fetches_idle

L=$(info huge-cl layer)
check "huge-cl: GET layer with Content-Length 10^12 -> 403 LIMIT_EXCEEDED" expect_error 403 LIMIT_EXCEEDED GET "/v2/huge-cl/app/blobs/$L"
check_true "huge-cl: the error names the bound" "body: $(head -c 300 "$T/e.body")" grep -q max_blob_bytes "$T/e.body"
check "huge-cl: the slot is free and nothing is pending" fetches_idle

# chunked_cut : a chunked body without end is cut once past the bound, promptly, without a complete body
chunked_cut() {
  local meta rc t0 t1
  t0=$(date +%s)
  meta=$(curl -sS --max-time 40 -o "$T/ch.body" -w '%{http_code} %{size_download}' \
         "http://$P/v2/chunked-forever/app/blobs/$(info chunked-forever layer)" 2>"$T/ch.err")
  rc=$? t1=$(date +%s)
  log "chunked-forever: curl rc=$rc http/size=$meta $((t1 - t0))s $(head -c 100 "$T/ch.err")"
  if [[ $rc == 0 && $meta == 2* ]]; then echo "a complete HTTP body ($meta)"; return 1; fi
  if [[ $rc == 0 ]]; then
    jq -e '.errors[0].code' "$T/ch.body" >/dev/null 2>&1 || { echo "HTTP $meta without an OCI error body"; return 1; }
  else
    [[ $rc == 18 || $rc == 56 || $rc == 92 ]] || { echo "curl exit $rc"; return 1; }
    (( ${meta#* } <= 8388608 )) || { echo "the client got ${meta#* } bytes, more than the bound"; return 1; }
  fi
  (( t1 - t0 <= 20 )) || { echo "took $((t1 - t0)) s"; return 1; }
  grep -q 'LIMIT_EXCEEDED' "$T/proxy.log" || { echo "no LIMIT_EXCEEDED in the log"; return 1; }
  alive
}
check "chunked-forever: a body without end is cut past --max-blob-bytes" chunked_cut
check "chunked-forever: the upstream connection was closed" upstream_closed chunked-forever 1
check "chunked-forever: the slot is free and nothing is pending" fetches_idle

# abandoned fetches: 3 slots, 3 clients hang up after the headers of 3 trickled blobs
start_proxy proxy2 --upstream "faulty.test=http://$F" --upstream-timeout 3 --max-inflight-fetches 3 ||
  { not_ok "a second proxy (3 fetch slots) starts" "$(tail -3 "$T/proxy2.log")"; finish; }
P2=${ADDR[proxy2]}
for i in 1 2 3; do
  curl -s -m 2 -o /dev/null "http://$P2/v2/trickle-any/app/blobs/sha256:$(printf '%064x' "$i")"
done
sleep 1
code=$(curl -s --max-time 30 -o "$T/p2.blob" -w '%{http_code}' "http://$P2/v2/honest/app/blobs/$HL")
check_eq "abandoned fetches: after 3 clients hung up on 3 endless fetches (3 slots), a cold pull gets its blob (not 429)" \
  "200 $HL" "$code $(sha_of "$T/p2.blob")"
check "abandoned fetches: the cancelled fetch's upstream connection was closed" upstream_closed trickle-any 1
check_true "abandoned fetches: the cancellation is counted" "$(grep -c 'no client was reading' "$T/proxy2.log") log lines" \
  grep -q 'no client was reading' "$T/proxy2.log"

# ---------------------------------------------------------------- serving through (review M6)
# A third proxy with two upstreams: slow.test trickles any blob (its fetch owns the digest's
# record), good.test is a docker-registry holding a 24 MiB layer. A client of good.test that
# reads slower than its upstream sends gets the whole layer: the fetch serving it through writes
# nothing, so it waits for its reader instead of running 6 chunks ahead and cutting it off.
serve_through() {
  local owner out before i
  start_upstream good || { echo "docker-registry does not start"; return 1; }
  head -c $((24 * 1024 * 1024)) /dev/urandom >"$T/big.bin"
  BL=$(sha_of "$T/big.bin")
  curl_push_blob "${ADDR[good]}" st/app "$T/big.bin" || return 1
  start_proxy proxy3 --upstream "slow.test=http://$F" --upstream "good.test=http://${ADDR[good]}" \
    --upstream-timeout 30 || { tail -3 "$T/proxy3.log"; return 1; }
  before=$(stat_of trickle-any blob)
  curl -s -m 30 -o /dev/null "http://${ADDR[proxy3]}/v2/slow.test/trickle-any/app/blobs/$BL" & owner=$!
  for ((i = 0; i < 100; i++)); do  # until slow.test was asked: its fetch owns the digest
    (($(stat_of trickle-any blob) > before)) && break
    sleep 0.1
  done
  sleep 0.3  # and has had its headers
  out=$(curl -s --max-time 60 --limit-rate 8M -o "$T/st.blob" -w '%{http_code}' \
        "http://${ADDR[proxy3]}/v2/good.test/st/app/blobs/$BL")
  kill "$owner" 2>/dev/null; wait "$owner" 2>/dev/null
  [[ "$out $(sha_of "$T/st.blob")" == "200 $BL" ]] ||
    { echo "got $out, $(stat -c %s "$T/st.blob") bytes"; return 1; }
  grep -q 'blob served through' "$T/proxy3.log" || { echo "the fetch did not serve through"; return 1; }
}
check "serving through: a client slower than its upstream gets the whole layer while another upstream's fetch of it trickles" \
  serve_through

# ---------------------------------------------------------------- nothing of it was cached
if "$PORTCULLIS_BIN" admin --server "http://127.0.0.1:$AP" --token-file "$TOK" cache ls --json >"$T/ls.json" 2>"$T/ls.err"; then
  ok "admin cache ls answers"
  cached=$(jq -r '[.blobs[].digest, .manifests[].digest] | .[]' "$T/ls.json" | sort)
  want=$(printf '%s\n' "$HM" "$(info honest config)" "$HL" | sort)
  # the honest image may hold only what the control fetched: its manifest and layer (and not its config)
  bad=""
  for d in $cached; do
    grep -qx "$d" <<<"$want" || bad+="$d "
  done
  check_true "the cache holds nothing but the honest image's manifest and layer" "also cached: $bad" test -z "$bad"
  check_true "the honest layer is cached (the check above can see the cache)" "cache ls: $(head -c 300 "$T/ls.json")" \
    grep -qx "$HL" <<<"$cached"
else
  not_ok "admin cache ls answers" "$(head -c 300 "$T/ls.err")"
fi
check_true "proxy still running at the end" "$(tail -2 "$T/proxy.log")" alive
check_true "no exception reached the log" "$(grep -i 'exception\|terminate' "$T/proxy.log" | head -2)" \
  bash -c "! grep -qi 'terminate called\|exception' '$T/proxy.log'"

finish
