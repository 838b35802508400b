#!/usr/bin/env bash
# Portcullis benchmark: Portcullis vs docker-registry in proxy mode ("distribution") vs nginx
# (sendfile of the same bytes: the physical limit), side by side on one machine, 127.0.0.1 only.
#
# Usage: bench/run.sh [--smoke] [--cold-only] [--rounds N] [--out DIR] [--bin PATH]
#                     [--baseline-bin PATH] [--keep-tmp]
#   --smoke      1 round, 2 s wrk runs, a 64 MiB blob instead of 1 GiB (about a minute)
#   --cold-only  test 4 (cold pulls) alone; RESULTS.md shows only its rows
#   --rounds N   rounds per measurement (default 5; medians are reported)
#   --out DIR    where RESULTS.md and results.json go (default: this folder)
#   --bin PATH   the portcullis binary (default $PORTCULLIS_BIN, else build/cli/portcullis);
#                it is copied into the temp dir so a rebuild during the run changes nothing
#   --baseline-bin PATH  a second portcullis binary measured in test 4 side by side with --bin
#                (column "baseline"): the effect of a change, in the same rounds
#   --keep-tmp   keep the temp dir (logs, data dirs) afterwards
#
# Never asserts performance: the exit status is 0 when every measurement produced a number,
# 1 when one did not (a server failed, a transfer was short, wrk saw errors), 2 on setup errors.
# See bench/README.md for what is measured and how.
set -euo pipefail
export LC_ALL=C

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SRC_DIR="$(cd "$BENCH_DIR/.." && pwd)"
PY=/usr/bin/python3   # Debian's python (python3 on PATH may be a pyenv build)

MODE=full ROUNDS=5 OUT=$BENCH_DIR KEEP=0 BIN=${PORTCULLIS_BIN:-$SRC_DIR/build/cli/portcullis}
ROUNDS_SET=0 COLD_ONLY=0 BASELINE_BIN=
while (($#)); do
  case $1 in
    --smoke) MODE=smoke ;;
    --rounds) ROUNDS=${2:?--rounds N}; ROUNDS_SET=1; shift ;;
    --out) OUT=${2:?--out DIR}; shift ;;
    --bin) BIN=${2:?--bin PATH}; shift ;;
    --keep-tmp) KEEP=1 ;;
    --cold-only) COLD_ONLY=1 ;;
    --baseline-bin) BASELINE_BIN=${2:?--baseline-bin PATH}; shift ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[[ $ROUNDS =~ ^[1-9][0-9]?$ ]] || { echo "run.sh: --rounds must be 1..99" >&2; exit 2; }

MiB=$((1024 * 1024))
if [[ $MODE == smoke ]]; then
  ((ROUNDS_SET)) || ROUNDS=1
  WRK_SECS=2
  BIG_BYTES=$((64 * MiB))
else
  WRK_SECS=10
  BIG_BYTES=$((1024 * MiB))
fi
MID_BYTES=$((200 * MiB))          # the "200 MiB-layer image"
WRK_THREADS=2 WRK_CONNS=64
ACCEPT_ALL='application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json'
OCI_MANIFEST=application/vnd.oci.image.manifest.v1+json
SERVERS=(portcullis distribution nginx)

# shellcheck source=bench/lib.sh
source "$BENCH_DIR/lib.sh"   # tools, temp dir, servers, images, measuring helpers

# ---------------------------------------------------------------- machine facts
T_START=$EPOCHREALTIME
LOAD_BEFORE=$(cat /proc/loadavg)
cp "$BIN" "$W/portcullis"
if [[ -n $BASELINE_BIN ]]; then
  [[ -x $BASELINE_BIN ]] || die "baseline binary $BASELINE_BIN not found"
  cp "$BASELINE_BIN" "$W/portcullis-baseline"
fi
COMMIT=$(git -C "$SRC_DIR" rev-parse HEAD 2>/dev/null || echo unknown)
if [[ $COMMIT != unknown ]] && [[ -n $(git -C "$SRC_DIR" --no-optional-locks status --porcelain --untracked-files=no -- . \
             ':!bench/RESULTS.md' ':!bench/results.json' 2>/dev/null) ]]; then
  COMMIT="$COMMIT (work tree has uncommitted changes)"
fi
HAS_POLICY=0
if ((COLD_ONLY)); then
  BIG_BYTES=$((1 * MiB))   # test 4 uses the 200 MiB image only
elif "$W/portcullis" serve --help 2>&1 | grep -q -- '--policy'; then
  HAS_POLICY=1
fi
say "mode $MODE, $ROUNDS round(s), blob $((BIG_BYTES / MiB)) MiB, wrk ${WRK_SECS}s; temp dir $W"
say "load average before: $LOAD_BEFORE"

# ---------------------------------------------------------------- setup
start_registry upstream
say "generating and pushing images"
mkdir -p "$W/src"
keystream "$W/src/big.bin" "$BIG_BYTES" portcullis-bench-big
keystream "$W/src/mid.bin" "$MID_BYTES" portcullis-bench-mid
printf 'portcullis bench small layer\n' >"$W/src/small.bin"
make_image bench/big v1 "$W/src/big.bin" big;   BIG_DG=$L_DIGEST
make_image bench/mid v1 "$W/src/mid.bin" mid;   MID_DG=$L_DIGEST
make_image bench/small v1 "$W/src/small.bin" small; SMALL_M=$M_DIGEST; SMALL_M_FILE=$M_FILE
for ((r = 1; r <= ROUNDS; r++)); do make_image bench/small "cold-$r" "$W/src/small.bin" "cold-$r"; done
MANIFEST_BYTES=$(stat -c %s "$SMALL_M_FILE")

start_registry distribution "http://${ADDR[upstream]}"
start_portcullis portcullis --tag-ttl 300
start_nginx
# nginx serves the same blob files (hard links) and the manifest bytes under the registry paths
mkdir -p "$W/nginx/root/v2/bench/big/blobs" "$W/nginx/root/v2/bench/mid/blobs" "$W/nginx/root/v2/bench/small/manifests"
ln "$W/src/big.bin" "$W/nginx/root/v2/bench/big/blobs/$BIG_DG"
ln "$W/src/mid.bin" "$W/nginx/root/v2/bench/mid/blobs/$MID_DG"
cp "$SMALL_M_FILE" "$W/nginx/root/v2/bench/small/manifests/$SMALL_M"
chmod -R a+rX "$W/src" "$W/nginx/root"

declare -A BASE=([portcullis]="http://${ADDR[portcullis]}" [distribution]="http://${ADDR[distribution]}" [nginx]="http://${ADDR[nginx]}")

# With a trust policy (when serve has --policy): a second Portcullis that serves only images
# signed by the bench key. bench/small:v1 and every cold-N tag are signed in the upstream with
# `portcullis key generate` + `portcullis sign --allow-http`; bench/mid:v1 is left unsigned.
if ((COLD_ONLY)); then
  say "--cold-only: tests 1-3, 5 and 6 skipped"
else
if ((HAS_POLICY)); then
  say "policy variant: signing the small images, starting Portcullis with --policy"
  mkdir -p "$W/keys"
  PORTCULLIS_PASSWORD=bench "$W/portcullis" key generate --output-prefix "$W/keys/bench" >"$W/sign.log" 2>&1 ||
    die "portcullis key generate failed"
  for ref in bench/small:v1 $(for ((r = 1; r <= ROUNDS; r++)); do echo "bench/small:cold-$r"; done); do
    PORTCULLIS_PASSWORD=bench "$W/portcullis" sign "${ADDR[upstream]}/$ref" --key "$W/keys/bench.key" --allow-http \
      >>"$W/sign.log" 2>&1 || die "portcullis sign $ref failed: $(tail -2 "$W/sign.log")"
  done
  cat >"$W/policy.json" <<JSON
{"keys": {"bench": {"path": "$W/keys/bench.pub"}},
 "rules": [{"match": "bench.test/bench/**", "require": {"keys": ["bench"]}}],
 "default": "reject"}
JSON
  start_portcullis portcullis-policy --tag-ttl 300 --verdict-ttl 3600 --policy "$W/policy.json"
  BASE[portcullis-policy]="http://${ADDR[portcullis-policy]}"
  st=$(curl -s -o /dev/null -w '%{http_code}' -H "Accept: $ACCEPT_ALL" "${BASE[portcullis-policy]}/v2/bench/mid/manifests/v1")
  note portcullis-policy "sanity: the unsigned bench/mid:v1 through the policy instance answered HTTP $st (403 expected)"
fi
BLOB_PATH=/v2/bench/big/blobs/$BIG_DG
MDIG_PATH=/v2/bench/small/manifests/$SMALL_M
MTAG_PATH=/v2/bench/small/manifests/v1

say "warming: manifests through both proxies, then one cache-filling and one warm GET of the blob per server"
for s in portcullis distribution; do
  for p in /v2/bench/big/manifests/v1 "$MTAG_PATH" "$MDIG_PATH"; do
    [[ $(curl_time_ms "${BASE[$s]}$p") != nan ]] || die "$s cannot serve $p"
  done
  [[ $(pull_n "${BASE[$s]}$BLOB_PATH" 1 "$BIG_BYTES") != nan ]] || die "$s cannot serve the blob"
done
if ((HAS_POLICY)); then
  [[ $(curl_time_ms "${BASE[portcullis-policy]}$MTAG_PATH") != nan ]] || die "portcullis-policy refuses the signed $MTAG_PATH"
fi
# distribution commits its copy after the response: wait until its storage holds the whole blob
hex=${BIG_DG#sha256:}
for i in $(seq 300); do
  [[ $(stat -c %s "$W/distribution-data/docker/registry/v2/blobs/sha256/${hex:0:2}/$hex/data" 2>/dev/null) == "$BIG_BYTES" ]] && break
  sleep 0.2
done
sleep 0.5
for s in "${SERVERS[@]}"; do
  [[ $(pull_n "${BASE[$s]}$BLOB_PATH" 1 "$BIG_BYTES") != nan ]] || die "$s cannot serve the blob (warm GET)"
done
UP_LINES_CACHED=$(log_lines)

# ---------------------------------------------------------------- 1. cached blob
say "1. cached blob, 1 and 8 concurrent clients"
for ((r = 1; r <= ROUNDS; r++)); do
  for s in "${SERVERS[@]}"; do
    record blob_c1_MBps "$s" "$(pull_n "${BASE[$s]}$BLOB_PATH" 1 "$BIG_BYTES")"
    record blob_c8_MBps "$s" "$(pull_n "${BASE[$s]}$BLOB_PATH" 8 "$BIG_BYTES")"
  done
done

# ---------------------------------------------------------------- 2. manifest by digest
say "2. manifest by digest, wrk -t$WRK_THREADS -c$WRK_CONNS -d${WRK_SECS}s"
for ((r = 1; r <= ROUNDS; r++)); do
  for s in "${SERVERS[@]}"; do
    read -r rps p99 tmo ovf < <(run_wrk "mdig-$s" "${BASE[$s]}$MDIG_PATH")
    record mdig_rps "$s" "$rps"; record mdig_p99_ms "$s" "$p99"
    record mdig_wrk_timeouts "$s" "$tmo"; record mdig_listen_overflows "$s" "$ovf"
  done
done

# ---------------------------------------------------------------- 3. manifest by tag within the TTL
say "3. manifest by tag (Portcullis --tag-ttl 300; distribution asks upstream each time)"
MTAG_SERVERS=(portcullis distribution)
((HAS_POLICY)) && MTAG_SERVERS=(portcullis portcullis-policy distribution)
for ((r = 1; r <= ROUNDS; r++)); do
  rps_plain=nan rps_policy=nan
  order=("${MTAG_SERVERS[@]}")
  # The two Portcullis variants swap places every other round, so the
  # policy-vs-none ratio does not also measure which one ran second.
  ((HAS_POLICY && r % 2 == 0)) && order=(portcullis-policy portcullis distribution)
  for s in "${order[@]}"; do
    read -r rps p99 tmo ovf < <(run_wrk "mtag-$s" "${BASE[$s]}$MTAG_PATH")
    if [[ $s == portcullis-policy ]]; then
      record mtag_policy_rps portcullis "$rps"; record mtag_policy_p99_ms portcullis "$p99"
      rps_policy=$rps
    else
      record mtag_rps "$s" "$rps"; record mtag_p99_ms "$s" "$p99"
      record mtag_wrk_timeouts "$s" "$tmo"; record mtag_listen_overflows "$s" "$ovf"
      [[ $s == portcullis ]] && rps_plain=$rps
    fi
  done
  # The two Portcullis runs of one round are back to back: their ratio is less
  # exposed to the machine's drift than the ratio of two medians.
  if ((HAS_POLICY)); then
    record mtag_policy_ratio portcullis "$(awk -v a="$rps_policy" -v b="$rps_plain" \
      'BEGIN{if (a == "nan" || b == "nan" || b + 0 == 0) print "nan"; else printf "%.4f\n", a / b}')"
  fi
done
if ((HAS_POLICY)); then
  note portcullis-policy "policy variant: a second Portcullis with --policy (one rule: bench.test/bench/** requires a signature by the bench key; default reject), --verdict-ttl 3600, images signed with portcullis sign --allow-http"
else
  note portcullis "policy verification is not wired into the proxy (serve --help lists no --policy): the signed-policy variants of 3 and 6 were not run"
fi
# Did the cached-blob tests stay off the upstream?
read -r g _ < <(upstream_blob_bytes_since "$UP_LINES_CACHED")
record upstream_blob_gets_during_cached_tests all "$g"
if ((g > 0)); then
  note all "upstream blob GETs during tests 1-3: $(tail -n +"$((UP_LINES_CACHED + 1))" "$W/upstream.log" | grep -E '"GET /v2/[^ ]+/blobs/' | head -3 |
    sed -E 's/.*\[([^]]*)\] "GET [^ ]*(sha256:.{12})[^"]*" ([0-9]+) ([0-9]+) "[^"]*" "([^"]*)".*/[\1 \2 status \3, \4 bytes, agent \5]/' | tr '\n' ' ')"
fi

# ---------------------------------------------------------------- 5. peak RSS, 16 clients
say "5. peak RSS while 16 clients pull the blob"
for s in "${SERVERS[@]}"; do
  mapfile -t pids < <(server_pids "$s")
  hwm_ok=1
  for p in "${pids[@]}"; do echo 5 >"/proc/$p/clear_refs" 2>/dev/null || hwm_ok=0; done   # reset VmHWM
  rss_sum VmRSS "${pids[@]}" >"$W/rss-$s"   # one sample before the pulls, whatever the timing
  rss_sampler "$W/rss-$s" "${pids[@]}" &
  sampler=$!; HELPERS+=("$sampler")
  record blob_c16_MBps "$s" "$(pull_n "${BASE[$s]}$BLOB_PATH" 16 "$BIG_BYTES")"
  kill "$sampler" 2>/dev/null || true; wait "$sampler" 2>/dev/null || true
  sampled=$(max_of "$W/rss-$s")
  hwm=$(rss_sum VmHWM "${pids[@]}")
  ((hwm_ok)) || hwm=$sampled
  ((sampled > hwm)) && hwm=$sampled
  record rss_peak_MiB "$s" "$(awk -v k="$hwm" 'BEGIN{printf "%.1f\n", k/1024}')"
  record rss_sampled_MiB "$s" "$(awk -v k="$sampled" 'BEGIN{printf "%.1f\n", k/1024}')"
  note "$s" "RSS processes: ${#pids[@]}"
done

# ---------------------------------------------------------------- 6. cold vs warm first request of a tag
say "6. first request of a never-seen tag (cold) and the next one (warm)"
for ((r = 1; r <= ROUNDS; r++)); do
  for s in portcullis distribution; do
    record tag_cold_ms "$s" "$(curl_time_ms "${BASE[$s]}/v2/bench/small/manifests/cold-$r")"
    record tag_warm_ms "$s" "$(curl_time_ms "${BASE[$s]}/v2/bench/small/manifests/cold-$r")"
  done
  if ((HAS_POLICY)); then
    record tag_cold_policy_ms portcullis "$(curl_time_ms "${BASE[portcullis-policy]}/v2/bench/small/manifests/cold-$r")"
    record tag_warm_policy_ms portcullis "$(curl_time_ms "${BASE[portcullis-policy]}/v2/bench/small/manifests/cold-$r")"
  fi
done

fi   # COLD_ONLY

# ---------------------------------------------------------------- 4. cold pulls
say "4. cold pulls of the 200 MiB blob (a fresh proxy for each measurement): 8 concurrent, then one; direct pulls"
MID_PATH=/v2/bench/mid/blobs/$MID_DG
COLD_PROXIES=(portcullis distribution)
[[ -n $BASELINE_BIN ]] && COLD_PROXIES=(portcullis baseline distribution)
# cold_server KIND : starts a fresh proxy of KIND (new data dir); sets CNAME
cold_server() {
  case $1 in
    portcullis) start_portcullis pc-cold --tag-ttl 300; CNAME=pc-cold ;;
    baseline) PC_EXE=$W/portcullis-baseline start_portcullis pcb-cold --tag-ttl 300; CNAME=pcb-cold ;;
    distribution) start_registry dist-cold "http://${ADDR[upstream]}"; CNAME=dist-cold ;;
  esac
}
# record_clients KEY SERVER FILE : the slowest and the median client of a pull_clients run
record_clients() {
  local n
  n=$(grep -c . "$3" || true)
  if ((n == 0)); then record "$1_client_max_s" "$2" nan; record "$1_client_med_s" "$2" nan; return; fi
  record "$1_client_max_s" "$2" "$(tail -1 "$3")"
  record "$1_client_med_s" "$2" "$(awk '{a[NR]=$1} END{printf "%.3f\n", (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}' "$3")"
  note "$2" "$1 client times (s), round $r: $(tr '\n' ' ' <"$3")"
}
for ((r = 1; r <= ROUNDS; r++)); do
  # The proxies take turns going first, so no one always runs on the coolest (or hottest) machine.
  order=()
  for ((i = 0; i < ${#COLD_PROXIES[@]}; i++)); do order+=("${COLD_PROXIES[$(((i + r - 1) % ${#COLD_PROXIES[@]}))]}"); done
  for s in "${order[@]}"; do
    cold_server "$s"
    before=$(log_lines)
    wall=$(pull_clients "http://${ADDR[$CNAME]}$MID_PATH" 8 "$MID_BYTES" "$W/clients")
    upstream_quiet   # every upstream GET of the measurement has ended and is logged
    read -r gets bytes < <(upstream_blob_bytes_since "$before")
    record cold8_wall_s "$s" "$wall"
    record_clients cold8 "$s" "$W/clients"
    record cold8_upstream_gets "$s" "$gets"
    record cold8_upstream_bytes "$s" "$bytes"
    stop_bg "$CNAME"; rm -rf "${W:?}/$CNAME-data"
    # One cold pull: the cost of fetching, hashing and storing the layer for one client.
    cold_server "$s"
    before=$(log_lines)
    record cold1_wall_s "$s" "$(pull_clients "http://${ADDR[$CNAME]}$MID_PATH" 1 "$MID_BYTES" "$W/clients")"
    upstream_quiet
    read -r gets bytes < <(upstream_blob_bytes_since "$before")
    record cold1_upstream_gets "$s" "$gets"
    record cold1_upstream_bytes "$s" "$bytes"
    stop_bg "$CNAME"; rm -rf "${W:?}/$CNAME-data"
  done
  # The limits: the same bytes from nginx (a file in the page cache, sendfile) and from the upstream.
  record cold1_wall_s nginx "$(pull_clients "${BASE[nginx]}$MID_PATH" 1 "$MID_BYTES" "$W/clients")"
  record direct_wall_s upstream "$(pull_clients "http://${ADDR[upstream]}$MID_PATH" 1 "$MID_BYTES" "$W/clients")"
  # 8 concurrent pulls straight from the upstream: each client gets its own copy, its share of the machine
  record direct8_wall_s upstream "$(pull_clients "http://${ADDR[upstream]}$MID_PATH" 8 "$MID_BYTES" "$W/clients")"
  record_clients direct8 upstream "$W/clients"
done
note all "load average after test 4: $(cat /proc/loadavg)"

# ---------------------------------------------------------------- report
LOAD_AFTER=$(cat /proc/loadavg)
WALL=$(awk -v a="$T_START" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.0f\n", b-a}')
say "load average after: $LOAD_AFTER; wall ${WALL}s"
mkdir -p "$OUT"
"$PY" "$BENCH_DIR/report.py" --raw "$RAW" --out "$OUT" \
  --meta mode="$MODE" rounds="$ROUNDS" wrk_secs="$WRK_SECS" wrk_threads="$WRK_THREADS" wrk_conns="$WRK_CONNS" \
  big_bytes="$BIG_BYTES" mid_bytes="$MID_BYTES" manifest_bytes="$MANIFEST_BYTES" \
  nproc="$(nproc)" cpu="$(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)" \
  ram_kib="$(awk '/^MemTotal/{print $2}' /proc/meminfo)" kernel="$(uname -r)" \
  date="$(date -u +%Y-%m-%dT%H:%M:%SZ)" commit="$COMMIT" version="$("$W/portcullis" version 2>/dev/null | head -1)" \
  load_before="$LOAD_BEFORE" load_after="$LOAD_AFTER" wall_s="$WALL" has_policy="$HAS_POLICY" \
  cold_only="$COLD_ONLY" baseline_bin="$BASELINE_BIN" \
  registry_version="$(docker-registry --version 2>/dev/null | head -1)" nginx_version="$(nginx -v 2>&1 | head -1)" \
  errors="$(head -c 2000 "$W/errors.log" 2>/dev/null | tr '\n' ';' || true)"
