#!/usr/bin/env bash
# Sanitizer runs of the unit tests (and, for ASan, some integration suites).
#
# Usage: tests/sanitize.sh asan|tsan [--build-only | doctest args...]
#   asan  builds into build-asan (clang, -fsanitize=address,undefined: the tree
#         tests/fuzz/run.sh builds its targets in too; tests/asan_tree.sh) and runs
#         every unit test case, then the integration suites in PORTCULLIS_ASAN_SUITES
#         (default: test_bad_input test_lying_upstream test_cache; "" runs none)
#         against the ASan binary. Any sanitizer report fails the run.
#   tsan  builds into build-tsan with -fsanitize=thread and runs the unit tests
#         whose code runs threads: blob fetches and their readers, the store, the
#         gate, the log writer, the event loop, the streamed GET (the portcullis_threaded_tests
#         runner; its files are listed in tests/CMakeLists.txt).
# Extra arguments go to the doctest runner (e.g. -tc="proxy: store*").
# --build-only: build the tree and stop (CI builds it while other tests run).
# Compiler: clang++ for asan; $CXX (default g++) for tsan. Needs root for the
# integration suites.
# Optimisation: asan, $PORTCULLIS_ASAN_OPT (default "-O0 -g1", tests/asan_tree.sh);
# tsan, $PORTCULLIS_SANITIZE_OPT (default "-O1 -g1": the sanitizers need no more,
# reports keep file:line, and it compiles in about half the CPU time of
# RelWithDebInfo's -O2 -g; tests/fuzz/README.md, "Time in CI"). "-O2 -g" for a
# full debug session.
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD
mode=${1:-}
shift || true
build_only=0
if [[ ${1:-} == --build-only ]]; then build_only=1; shift; fi
case $mode in
  # The flags are the tree's (tests/asan_tree.sh).
  asan) targets=(portcullis_tests portcullis) ;;
  # -Wno-tsan: GCC warns that TSan cannot model std::atomic_thread_fence, which
  # Asio's SSL stream uses; the TLS paths are not among the TSan cases.
  tsan) flags="-fsanitize=thread -fno-omit-frame-pointer -Wno-tsan"; targets=(portcullis_threaded_tests) ;;
  *) echo "usage: tests/sanitize.sh asan|tsan [doctest args...]" >&2; exit 2 ;;
esac
build=$src/build-$mode
# Reports go to files under $reports (and to stderr): an integration suite may
# hide a proxy's stderr, and a report in a file is still found below.
reports=$(mktemp -d /tmp/portcullis-$mode.XXXXXX)
export ASAN_OPTIONS="halt_on_error=1:detect_leaks=1:abort_on_error=0:log_path=$reports/asan:detect_stack_use_after_return=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$reports/ubsan"
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:log_path=$reports/tsan:suppressions=$src/tests/tsan.supp"

t0=$SECONDS
if [[ $mode == asan ]]; then
  source "$src/tests/asan_tree.sh"
  configure_asan_tree "$src" "$build"
else
  cmake -S "$src" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="${PORTCULLIS_SANITIZE_OPT:--O1 -g1} -DNDEBUG" \
    -DCMAKE_CXX_COMPILER="${CXX:-g++}" -DCMAKE_CXX_FLAGS="$flags" \
    -DCMAKE_EXE_LINKER_FLAGS="$flags" >/dev/null
fi
nice -n 10 cmake --build "$build" --target "${targets[@]}"
echo "sanitize.sh: $mode build took $((SECONDS - t0)) s"
((build_only == 0)) || { rm -rf "$reports"; exit 0; }

fail=0
check_reports() {  # $1: what ran
  local f found=0
  for f in "$reports"/*; do
    [[ -e $f ]] || continue
    found=1
    echo "sanitize.sh: $mode report from $1: $f" >&2
    head -n 60 "$f" >&2
    mv "$f" "$f.seen"
  done
  ((found == 0)) || fail=1
}

t0=$SECONDS
# Under TSan: no leak checks (it has none); RocksDB is not instrumented, so
# only our own code's races are found.
"$build/tests/${targets[0]}" --no-intro=true "$@" || fail=1
check_reports "unit tests"
echo "sanitize.sh: $mode unit tests took $((SECONDS - t0)) s"

if [[ $mode == asan ]]; then
  for suite in ${PORTCULLIS_ASAN_SUITES-test_bad_input test_lying_upstream test_cache}; do
    t0=$SECONDS
    if ! PORTCULLIS_BIN=$build/cli/portcullis PORTCULLIS_SRC=$src bash "$src/tests/integration/$suite.sh"; then
      echo "sanitize.sh: integration suite $suite failed under ASan" >&2
      fail=1
    fi
    check_reports "$suite"
    echo "sanitize.sh: $suite under ASan took $((SECONDS - t0)) s"
  done
fi
((fail)) || rm -rf "$reports"
((fail == 0)) && echo "sanitize.sh: $mode: no failures, no sanitizer reports"
exit $fail
