#!/usr/bin/env bash
# Soak (issue 13): mixed cached and cold pulls for a while at many concurrent connections, with
# the proxy's RSS sampled every second.
#   - wrk holds SOAK_CONNECTIONS connections on a cached manifest (by tag) and a cached 256 KiB
#     blob, alternately, for SOAK_SECONDS;
#   - meanwhile a loop pulls fresh images cold (manifest by tag, then the layer, sha256 checked),
#     one after the other;
#   - VmRSS of the proxy every second into $T/rss.tsv ("seconds rss_kib"; copied to SOAK_RSS_OUT
#     when set);
#   - reports: wrk requests, socket errors and non-2xx answers, cold pulls done and failed, RSS
#     min/max/last; checks 0 errors, the proxy alive at the end, max RSS under SOAK_RSS_LIMIT_MB.
# Knobs (environment): SOAK_SECONDS (60), SOAK_CONNECTIONS (1000), SOAK_WRK_THREADS (2),
#   SOAK_RSS_LIMIT_MB (2048), SOAK_PROXY_ARGS (extra serve flags; default none: the event-driven
#   engine holds every connection without a thread), SOAK_RSS_OUT (a path for the RSS samples).
# By hand, shorter:
#   SOAK_CONNECTIONS=50 SOAK_SECONDS=10 PORTCULLIS_BIN=$PWD/build/cli/portcullis bash tests/integration/test_soak.sh
source "$(dirname "$0")/lib.sh"
suite_init soak
need wrk

SECS=${SOAK_SECONDS:-60}
CONNS=${SOAK_CONNECTIONS:-1000}
WRK_THREADS=${SOAK_WRK_THREADS:-2}
RSS_LIMIT_MB=${SOAK_RSS_LIMIT_MB:-2048}
read -r -a EXTRA <<<"${SOAK_PROXY_ARGS:-}"
MiB=1048576
[[ $SECS =~ ^[0-9]+$ && $SECS -ge 5 && $CONNS =~ ^[0-9]+$ && $CONNS -ge 1 ]] ||
  { not_ok "knobs are sane" "SOAK_SECONDS=$SECS (>= 5), SOAK_CONNECTIONS=$CONNS (>= 1)"; finish; }
ulimit -n $((CONNS * 2 + 4096)) 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
log "soak: $SECS s, $CONNS connections, proxy flags: ${EXTRA[*]}, open files limit $(ulimit -n)"

# ---------------------------------------------------------------- peers and images
start_upstream upstream || { not_ok "upstream registry starts" "see $T/upstream.log"; finish; }
UP=${ADDR[upstream]}
check "the hot image (one 256 KiB layer) pushed into the upstream" push_random_image "$UP" soak/hot v1 $((256 * 1024)) ||
  finish
HOTBLOB=${LAYER_DIGESTS[0]}
NCOLD=$((SECS * 2))
((NCOLD > 400)) && NCOLD=400
declare -a COLD=()
t0=$(date +%s)
made=1
for ((i = 0; i < NCOLD; i++)); do
  push_random_image "$UP" "soak/cold$i" v1 $((MiB + RANDOM * 32)) >"$T/push.out" 2>&1 || { made=0; break; }
  COLD[$i]=${LAYER_DIGESTS[0]}
done
check_true "$NCOLD cold images (one random 1-2 MiB layer each) pushed ($(($(date +%s) - t0)) s)" "$(tail -2 "$T/push.out")" \
  test $made = 1 || finish

start_proxy proxy --upstream "upstream.test=http://$UP" --tag-ttl 3600 "${EXTRA[@]}" ||
  { not_ok "proxy starts" "$(tail -3 "$T/proxy.log")"; finish; }
P=${ADDR[proxy]}
PPID_PROXY=${PIDS[proxy]}
# warm the hot image
check_eq "the hot manifest is cached (200 through the proxy)" 200 \
  "$(http_status GET "http://$P/v2/soak/hot/manifests/v1" -H "Accept: $ACCEPT_ALL")"
check_eq "the hot blob is cached (sha256 = digest)" "$HOTBLOB" \
  "sha256:$(curl -sS --max-time 60 "http://$P/v2/soak/hot/blobs/$HOTBLOB" | sha256sum | cut -d' ' -f1)"

# ---------------------------------------------------------------- the soak
cat >"$T/soak.lua" <<LUA
local paths = { "/v2/soak/hot/manifests/v1", "/v2/soak/hot/blobs/$HOTBLOB" }
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", paths[(n % 2) + 1], { ["Accept"] = "$ACCEPT_ALL" })
end
LUA
# RSS sampler: one line per second until the proxy is gone or the stop file appears
( start=$(date +%s)
  while [[ ! -e $T/stop ]] && kill -0 "$PPID_PROXY" 2>/dev/null; do
    kb=$(awk '/^VmRSS:/ { print $2 }' "/proc/$PPID_PROXY/status" 2>/dev/null)
    [[ -n $kb ]] && echo "$(($(date +%s) - start)) $kb" >>"$T/rss.tsv"
    sleep 1
  done ) &
SAMPLER=$!
# cold loop
( n=0 fail=0 deadline=$(($(date +%s) + SECS))
  for ((i = 0; i < NCOLD; i++)); do
    (($(date +%s) >= deadline)) && break
    code=$(curl -s -o /dev/null --max-time 60 -w '%{http_code}' -H "Accept: $ACCEPT_ALL" "http://$P/v2/soak/cold$i/manifests/v1")
    s=sha256:$(curl -sS --max-time 60 -f "http://$P/v2/soak/cold$i/blobs/${COLD[$i]}" 2>>"$T/cold.err" | sha256sum | cut -d' ' -f1)
    n=$((n + 1))
    if [[ $code != 200 || $s != "${COLD[$i]}" ]]; then
      fail=$((fail + 1))
      echo "cold$i: manifest HTTP $code, blob sha $s" >>"$T/cold.err"
    fi
  done
  echo "$n $fail" >"$T/cold.counts" ) &
COLDPID=$!
timeout $((SECS + 60)) wrk -t "$WRK_THREADS" -c "$CONNS" -d "${SECS}s" --timeout 10s -s "$T/soak.lua" "http://$P" \
  >"$T/wrk.out" 2>&1
wrk_rc=$?
wait "$COLDPID"
touch "$T/stop"
wait "$SAMPLER"
sed 's/^/#   /' "$T/wrk.out" >&3

# ---------------------------------------------------------------- the report
reqs=$(awk '/requests in/ { print $1 }' "$T/wrk.out")
sock=$(awk '/Socket errors:/ { gsub(",", ""); print $4 + $6 + $8 + $10 }' "$T/wrk.out")
non2xx=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$T/wrk.out")
read -r cold_n cold_fail <"$T/cold.counts" 2>/dev/null || { cold_n=0 cold_fail=0; }
read -r rss_min rss_max rss_last nsamples < <(awk 'NR == 1 { mn = $2; mx = $2 } { if ($2 < mn) mn = $2; if ($2 > mx) mx = $2; last = $2 }
  END { printf "%d %d %d %d\n", mn / 1024, mx / 1024, last / 1024, NR }' "$T/rss.tsv" 2>/dev/null)
errors=$(( ${sock:-0} + ${non2xx:-0} + ${cold_fail:-0} ))
[[ -n ${SOAK_RSS_OUT:-} ]] && cp "$T/rss.tsv" "$SOAK_RSS_OUT"
log "RSS curve (seconds MiB), every 5th sample: $(awk 'NR % 5 == 1 { printf "%d:%d ", $1, $2 / 1024 }' "$T/rss.tsv")"
echo "soak: seconds=$SECS connections=$CONNS wrk_requests=${reqs:-0} wrk_socket_errors=${sock:-0} wrk_non2xx=${non2xx:-0} cold_pulls=$cold_n cold_failures=$cold_fail errors=$errors rss_mib_min=${rss_min:-?} rss_mib_max=${rss_max:-?} rss_mib_last=${rss_last:-?} rss_samples=${nsamples:-0}"

check_eq "wrk ran to its end (exit 0)" 0 "$wrk_rc"
check_true "wrk made requests" "wrk output: $(tail -3 "$T/wrk.out")" test "${reqs:-0}" -gt 0
check_true "cold pulls ran during the soak" "cold pulls: $cold_n" test "$cold_n" -gt 0
check_eq "0 errors (wrk socket errors + non-2xx answers + failed cold pulls)" 0 "$errors" ||
  head -5 "$T/cold.err" 2>/dev/null | sed 's/^/#   /'
check_true "RSS sampled about every second (>= $((SECS / 2)) samples)" "${nsamples:-0} samples" \
  test "${nsamples:-0}" -ge $((SECS / 2))
check_true "RSS bounded: max ${rss_max:-?} MiB <= $RSS_LIMIT_MB MiB" "max ${rss_max:-?} MiB" \
  test "${rss_max:-999999}" -le "$RSS_LIMIT_MB"
check "the proxy is still running" is_running proxy
check_eq "... and answers GET /v2/" 200 "$(http_status GET "http://$P/v2/")"
finish
