#!/usr/bin/env bash
# Where one cold pull's time goes: wall time and CPU seconds, by thread, of one cold GET of a
# 200 MiB blob through a fresh Portcullis, next to a direct GET from the upstream.
#
# Usage: bench/cold_cpu.sh [--rounds N] [--bin PATH] [--perf] [-- SERVE_FLAGS...]
#   --rounds N  fresh proxies, one pull each (default 3)
#   --bin PATH  the portcullis binary (default $PORTCULLIS_BIN, else build/cli/portcullis)
#   --perf      also record the last round with `perf record` and print its top symbols by thread name
#   SERVE_FLAGS more `portcullis serve` flags (to compare settings)
#   KEEP=1 in the environment keeps the temp dir (proxy logs, perf.data) and prints its path
#   PERF_RECORD_ARGS in the environment: more `perf record` flags for --perf (e.g. "-g")
#
# Starts a docker-registry upstream on 127.0.0.1 with one 200 MiB blob, then per round: a
# direct pull, a fresh proxy and one pull through it. Prints per round: direct and proxy wall
# and first-byte times, proxy CPU (user+system, from /proc), the CPU of each of its thread names
# and its minor page faults. Never asserts; the machine's other load shows in the numbers (run it
# on an idle machine).
set -euo pipefail
export LC_ALL=C
BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SRC_DIR="$(cd "$BENCH_DIR/.." && pwd)"
PY=/usr/bin/python3
BIN=${PORTCULLIS_BIN:-$SRC_DIR/build/cli/portcullis} ROUNDS=3 PERF=0 KEEP=${KEEP:-0}
EXTRA=()
while (($#)); do
  case $1 in
    --rounds) ROUNDS=${2:?--rounds N}; shift ;;
    --bin) BIN=${2:?--bin PATH}; shift ;;
    --perf) PERF=1 ;;
    --) shift; EXTRA=("$@"); break ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "cold_cpu.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[[ $ROUNDS =~ ^[1-9][0-9]?$ ]] || { echo "cold_cpu.sh: --rounds must be 1..99" >&2; exit 2; }
OCI_MANIFEST=application/vnd.oci.image.manifest.v1+json
# shellcheck source=bench/lib.sh
source "$BENCH_DIR/lib.sh"
cp "$BIN" "$W/portcullis"
((PERF == 0)) || command -v perf >/dev/null || die "--perf needs perf (apt-get install linux-perf)"

TICK=$(getconf CLK_TCK)
# cpu_by_thread PID : "comm ticks" per thread (utime + stime), threads of one name summed
cpu_by_thread() {
  local t
  # the process's own line counts every thread, ended ones included
  awk '{ sub(/^.*\) /, ""); print "(process)\t" $12 + $13; print "(page faults)\t" $8 }' /proc/"$1"/stat
  for t in /proc/"$1"/task/*; do
    # comm may hold spaces; the fields after its closing ')' are fixed
    awk -v c="$(cat "$t/comm" 2>/dev/null)" '{ sub(/^.*\) /, ""); print c "\t" $12 + $13 }' "$t/stat" 2>/dev/null || true
  done | awk -F'\t' '{ s[$1] += $2 } END { for (k in s) print k "\t" s[k] }'
}

start_registry upstream
MID=$W/mid.bin
keystream "$MID" $((200 * 1024 * 1024)) cold-cpu
DG=sha256:$(sha "$MID")
push_blob bench/cold "$MID" "$DG"
PATH_=/v2/bench/cold/blobs/$DG
say "upstream ${ADDR[upstream]}, blob $DG"

for ((r = 1; r <= ROUNDS; r++)); do
  direct=$(curl -s -o /dev/null -w '%{http_code} %{time_total} %{time_starttransfer}' "http://${ADDR[upstream]}$PATH_")
  start_portcullis "pc$r" "${EXTRA[@]}"
  pid=${PIDS[pc$r]}
  before=$(cpu_by_thread "$pid")
  if ((PERF && r == ROUNDS)); then
    # shellcheck disable=SC2086  # PERF_RECORD_ARGS: more perf record flags, e.g. "-e sched:sched_switch -g"
    perf record -q ${PERF_RECORD_ARGS:-} -p "$pid" -o "$W/perf.data" >/dev/null 2>&1 & PERFPID=$!
    sleep 0.5
  fi
  got=$(curl -s -o /dev/null -w '%{http_code} %{size_download} %{time_total} %{time_starttransfer}' "http://${ADDR[pc$r]}$PATH_")
  # the commit (the last flush) may end after the client's last byte: give it a moment
  sleep 0.5
  after=$(cpu_by_thread "$pid")
  if ((PERF && r == ROUNDS)); then kill -INT "$PERFPID"; wait "$PERFPID" || true; fi
  read -r code size secs first <<<"$got"
  read -r _ dsecs dfirst <<<"$direct"
  [[ "$code $size" == "200 $((200 * 1024 * 1024))" ]] || die "pull through the proxy: $got"
  printf 'round %d: direct %s s (first byte %s s), through portcullis %s s (first byte %s s)\n' "$r" "$dsecs" "$dfirst" "$secs" "$first"
  join -t $'\t' -a 2 -e 0 -o 0,1.2,2.2 <(sort <<<"$before") <(sort <<<"$after") |
    awk -F'\t' -v tick="$TICK" '$1 == "(page faults)" { faults = $3 - $2; next }
                                { d = ($3 - $2) / tick; if ($1 == "(process)") tot = d; else { live += d; if (d > 0) printf "  %-18s %.2f CPU-s\n", $1, d } }
                                END { printf "  %-18s %.2f CPU-s\n  %-18s %.2f CPU-s\n  %-18s %d (minor, process)\n", "(threads ended)", tot - live, "(process)", tot, "(page faults)", faults }'
  stop_bg "pc$r"
done
if ((PERF)); then
  perf report -i "$W/perf.data" --no-children --sort pid,symbol --stdio 2>/dev/null | grep -v "^#" | grep "%" | cut -c1-120 | grep -v "0x0000" | head -${PERF_LINES:-40}
fi
