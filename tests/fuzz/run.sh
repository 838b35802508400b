#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan+UBSan, into build-asan/, the tree
# tests/sanitize.sh asan builds its runner in too: tests/asan_tree.sh) and runs
# each for SECONDS on a temporary copy of its corpus (the committed seeds in
# tests/fuzz/corpus/<target>/ plus seeds extract_seeds.py takes from the unit
# tests), so the repository is never changed. Leaks are checked (LeakSanitizer).
#
# Usage: tests/fuzz/run.sh SECONDS [TARGET...]    (default: every target)
#        tests/fuzz/run.sh --build-only              (build them and stop)
# Env:   FUZZ_BUILD_DIR (default build-asan), FUZZ_KEEP_CORPUS=DIR (copy each
#        grown corpus to DIR/<target>/ afterwards, e.g. to add seeds by hand),
#        FUZZ_ARGS (extra libFuzzer flags).
# Prints one line per target with its executions (libFuzzer's
# stat::number_of_executed_units) and exits non-zero on any crash, leak,
# timeout or out-of-memory, printing the reproducer's path. Reproduce with:
#   build-asan/tests/fuzz/<target> <reproducer>
set -euo pipefail
cd "$(dirname "$0")/../.."
src=$PWD
secs=${1:-}
build_only=0
[[ $secs != --build-only ]] || { build_only=1; secs=0; }
[[ $secs =~ ^[0-9]+$ ]] || { echo "usage: tests/fuzz/run.sh SECONDS [TARGET...]" >&2; exit 2; }
shift
build=${FUZZ_BUILD_DIR:-$src/build-asan}
source "$src/tests/asan_tree.sh"

t0=$SECONDS
configure_asan_tree "$src" "$build"
nice -n 10 cmake --build "$build" --target portcullis_fuzz
echo "run.sh: build took $((SECONDS - t0)) s"
((build_only == 0)) || exit 0

if (($#)); then
  targets=("$@")
else
  mapfile -t targets < <(find "$build/tests/fuzz" -maxdepth 1 -type f -name 'fuzz_*' -perm -u+x -printf '%f\n' | sort)
fi
((${#targets[@]})) || { echo "run.sh: no fuzz targets built" >&2; exit 2; }

work=$(mktemp -d /tmp/portcullis-fuzz.XXXXXX)
crashes=$build/crashes
mkdir -p "$crashes"
export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:abort_on_error=0:symbolize=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
sym=$(command -v llvm-symbolizer || command -v llvm-symbolizer-14 || true)
if [[ -n $sym ]]; then export ASAN_SYMBOLIZER_PATH=$sym; fi

fail=0
total=0
printf '%-22s %14s %8s %s\n' target executions seeds result
for t in "${targets[@]}"; do
  bin=$build/tests/fuzz/$t
  [[ -x $bin ]] || { echo "run.sh: no target $t" >&2; fail=1; continue; }
  corpus=$work/$t/corpus
  mkdir -p "$corpus"
  if [[ -d $src/tests/fuzz/corpus/$t ]]; then cp -r "$src/tests/fuzz/corpus/$t/." "$corpus/"; fi
  python3 "$src/tests/fuzz/extract_seeds.py" "$t" "$corpus" >/dev/null
  seeds=$(find "$corpus" -type f | wc -l)
  log=$work/$t/log
  rc=0
  # -timeout: one input taking over 10 s is a hang, a bug. -rss_limit_mb: over
  # 2 GiB is a bug too. -max_len: big enough for manifests and policies.
  "$bin" -max_total_time="$secs" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
    -artifact_prefix="$crashes/$t-" ${FUZZ_ARGS:-} "$corpus" >"$log" 2>&1 || rc=$?
  execs=$(awk '/stat::number_of_executed_units/ {print $2}' "$log" | tail -n 1)
  execs=${execs:-0}
  total=$((total + execs))
  if ((rc == 0)); then
    printf '%-22s %14s %8s %s\n' "$t" "$execs" "$seeds" ok
  else
    fail=1
    printf '%-22s %14s %8s %s\n' "$t" "$execs" "$seeds" "FAILED (exit $rc)"
    repro=$(grep -o "Test unit written to .*" "$log" | sed 's/Test unit written to //' | tail -n 1)
    echo "run.sh: $t: reproducer: ${repro:-none written}; log: $log" >&2
    grep -E "ERROR: |SUMMARY: |runtime error|terminate called|what\(\)" "$log" | head -n 10 >&2 || true
  fi
  if [[ -n ${FUZZ_KEEP_CORPUS:-} ]]; then
    mkdir -p "$FUZZ_KEEP_CORPUS/$t" && cp -r "$corpus/." "$FUZZ_KEEP_CORPUS/$t/"
  fi
done
echo "run.sh: ${#targets[@]} targets, $total executions in total, $secs s each"
if ((fail)); then
  echo "run.sh: FAILED; logs kept in $work, reproducers in $crashes" >&2
  exit 1
fi
rm -rf "$work"
