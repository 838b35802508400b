#!/usr/bin/env bash
# Serving-engine benchmark: Portcullis vs distribution's proxy vs nginx under a fleet's
# connections, side by side on 127.0.0.1 (issue: the serving engine).
#
# Usage: bench/connections.sh [--smoke] [--out DIR] [--bin PATH] [--keep-tmp]
#   --smoke  1,000 idle + 100 slowloris, 200-connection spread, 2 s runs (about a minute)
#
# For each server, with IDLE (10,000) keep-alive connections that made one request and stay
# idle plus SLOW (1,000) slowloris connections held open (re-opened when cut):
#   - a new client's cached manifest: wrk -c1 p99 and req/s;
#   - a cached 64 MiB blob: one curl, MB/s;
#   - the server's RSS (Portcullis: peak too).
# Then, without them: wrk -c1000 and -c64 on the cached manifest (req/s, p99, socket errors)
# and the spread of requests per connection over 1,000 connections (bench/conn_load.py spread).
# Writes CONNECTIONS.md and connections.json into --out (default: this folder). Never asserts
# performance: exit 0 when every number was measured, 1 when one was not, 2 on setup errors.
set -euo pipefail
export LC_ALL=C

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SRC_DIR="$(cd "$BENCH_DIR/.." && pwd)"
PY=/usr/bin/python3
MODE=full OUT=$BENCH_DIR KEEP=0 BIN=${PORTCULLIS_BIN:-$SRC_DIR/build/cli/portcullis}
while (($#)); do
  case $1 in
    --smoke) MODE=smoke ;;
    --out) OUT=${2:?--out DIR}; shift ;;
    --bin) BIN=${2:?--bin PATH}; shift ;;
    --keep-tmp) KEEP=1 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "connections.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
if [[ $MODE == smoke ]]; then IDLE=1000 SLOW=100 SPREAD=200 WRK_SECS=2; else IDLE=10000 SLOW=1000 SPREAD=1000 WRK_SECS=10; fi
WRK_THREADS=2 WRK_CONNS=64
ACCEPT_ALL='application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json'
OCI_MANIFEST=application/vnd.oci.image.manifest.v1+json
export NGINX_CONNECTIONS=$((IDLE + SLOW + 4096))
ulimit -n "$(ulimit -Hn)"
# shellcheck source=bench/lib.sh
source "$BENCH_DIR/lib.sh"
cp "$BIN" "$W/portcullis"
RESULT=0

say "upstream and images"
start_registry upstream
keystream "$W/blob.bin" $((64 * 1024 * 1024)) conn-blob
make_image bench/conn v1 "$W/blob.bin" conn
MANIFEST=$M_DIGEST BLOB=$L_DIGEST BLOB_BYTES=$((64 * 1024 * 1024))

start_portcullis portcullis --max-connections $((IDLE + SLOW + 4096))
start_registry distribution "http://${ADDR[upstream]}"
start_nginx
mkdir -p "$W/nginx/root/v2/bench/conn/manifests" "$W/nginx/root/v2/bench/conn/blobs"
cp "$M_FILE" "$W/nginx/root/v2/bench/conn/manifests/$MANIFEST"
cp "$W/blob.bin" "$W/nginx/root/v2/bench/conn/blobs/$BLOB"
for s in portcullis distribution; do   # warm the caches
  curl -sf -o /dev/null -H "Accept: $ACCEPT_ALL" "http://${ADDR[$s]}/v2/bench/conn/manifests/$MANIFEST" || die "$s: manifest"
  curl -sf -o /dev/null "http://${ADDR[$s]}/v2/bench/conn/blobs/$BLOB" || die "$s: blob"
done

declare -A V=()
val() { V[$1]=$2; [[ $2 == nan ]] && RESULT=1; return 0; }
for s in portcullis distribution nginx; do
  port=${ADDR[$s]##*:}
  murl="http://${ADDR[$s]}/v2/bench/conn/manifests/$MANIFEST"
  burl="http://${ADDR[$s]}/v2/bench/conn/blobs/$BLOB"
  say "$s: holding $IDLE idle + $SLOW slowloris connections"
  rm -f "$W/ready"
  "$PY" "$BENCH_DIR/conn_load.py" hold "$port" "$IDLE" "$SLOW" "$W/ready" "/v2/bench/conn/manifests/$MANIFEST" \
    >"$W/hold-$s.json" 2>"$W/hold-$s.err" &
  hold=$!
  HELPERS+=("$hold")
  for _ in $(seq 1200); do [[ -s $W/ready ]] && break; kill -0 "$hold" 2>/dev/null || break; sleep 0.1; done
  if [[ -s $W/ready ]]; then
    read -r rps p99 _ _ < <(WRK_CONNS=1 WRK_THREADS=1 run_wrk "$s-held" "$murl")
    val "held_manifest_p99_ms/$s" "$p99"; val "held_manifest_rps/$s" "$rps"
    val "held_blob_mbps/$s" "$(pull_n "$burl" 1 "$BLOB_BYTES")"
    val "held_rss_mib/$s" "$(( $(rss_sum VmRSS $(server_pids "$s")) / 1024 ))"
  else
    say "$s: the holder failed: $(tail -2 "$W/hold-$s.err")"
    for k in held_manifest_p99_ms held_manifest_rps held_blob_mbps held_rss_mib; do val "$k/$s" nan; done
  fi
  kill -TERM "$hold" 2>/dev/null || true
  wait "$hold" 2>/dev/null || true
  note "$s" "holder: $(cat "$W/hold-$s.json" 2>/dev/null | tr -d '\n')"
  sleep 1
  say "$s: wrk -c1000, -c64, spread over $SPREAD connections"
  read -r rps p99 tmo _ < <(WRK_CONNS=1000 run_wrk "$s-c1000" "$murl")
  val "c1000_rps/$s" "$rps"; val "c1000_p99_ms/$s" "$p99"; val "c1000_timeouts/$s" "$tmo"
  read -r rps p99 _ _ < <(run_wrk "$s-c64" "$murl")
  val "c64_rps/$s" "$rps"; val "c64_p99_ms/$s" "$p99"
  "$PY" "$BENCH_DIR/conn_load.py" spread "$port" "$SPREAD" "$WRK_SECS" "/v2/bench/conn/manifests/$MANIFEST" \
    "$ACCEPT_ALL" >"$W/spread-$s.json" 2>>"$W/errors.log" || true
  for k in min median max unserved errors; do
    val "spread_$k/$s" "$(jq -r ".$k // \"nan\"" "$W/spread-$s.json" 2>/dev/null || echo nan)"
  done
done
val "peak_rss_mib/portcullis" "$(( $(rss_sum VmHWM "${PIDS[portcullis]}") / 1024 ))"

mkdir -p "$OUT"
{
  echo "# Connections benchmark ($MODE, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, commit $(git -C "$SRC_DIR" rev-parse --short HEAD 2>/dev/null || echo ?))"
  echo
  echo "Held: $IDLE idle keep-alive + $SLOW slowloris connections. Spread: requests per connection over $SPREAD connections in ${WRK_SECS} s."
  echo
  echo "| measurement | portcullis | distribution | nginx |"
  echo "|---|---|---|---|"
  for k in held_manifest_p99_ms held_manifest_rps held_blob_mbps held_rss_mib c1000_rps c1000_p99_ms c1000_timeouts \
           c64_rps c64_p99_ms spread_min spread_median spread_max spread_unserved spread_errors; do
    echo "| $k | ${V[$k/portcullis]:-} | ${V[$k/distribution]:-} | ${V[$k/nginx]:-} |"
  done
  echo "| peak_rss_mib | ${V[peak_rss_mib/portcullis]} | | |"
  echo
  grep '^note' "$RAW" | cut -f2- | sed 's/^/- /'
} >"$OUT/CONNECTIONS.md"
for k in "${!V[@]}"; do printf '%s\t%s\n' "$k" "${V[$k]}"; done |
  jq -R -s 'split("\n") | map(select(length > 0) | split("\t")) | map({(.[0]): (.[1] | tonumber? // .)}) | add' \
  >"$OUT/connections.json"
cat "$OUT/CONNECTIONS.md"
exit "$RESULT"
