# Sourced by tests/sanitize.sh (asan) and tests/fuzz/run.sh: the one ASan+UBSan
# tree both build in, so the libraries are compiled once for the unit tests, the
# ASan proxy binary and the libFuzzer targets (CI used to compile them twice: a
# gcc ASan tree and a clang fuzz tree; tests/fuzz/README.md, "Time in CI").
#
# configure_asan_tree SRC BUILD
#   clang++ (libFuzzer is clang's), -DPORTCULLIS_FUZZ=ON: every object gets
#   -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all (the
#   top CMakeLists.txt); the fuzz executables link libFuzzer's main, the test
#   runner and the proxy only the sanitizers' runtime. Optimisation:
#   $PORTCULLIS_ASAN_OPT (default "-O0 -g1": the Boost.Beast files compile in
#   less than half the CPU time of -O1 with the sanitizers on, reports keep
#   file:line; "-O2 -g" for long fuzz runs: about three times the executions).
#   Both callers pass the same settings, so neither makes the other rebuild.
configure_asan_tree() {
  command -v clang++ >/dev/null || {
    echo "the ASan/fuzz tree needs clang++ (apt-get install clang libclang-rt-14-dev llvm)" >&2
    return 2
  }
  # A tree configured by another compiler (the gcc ASan tree of older
  # checkouts): CMake would drop this call's settings with its cache.
  if [[ -f $2/CMakeCache.txt ]] && ! grep -q '^CMAKE_CXX_COMPILER:[A-Z]*=.*clang++' "$2/CMakeCache.txt"; then
    rm -rf "$2/CMakeCache.txt" "$2/CMakeFiles"
  fi
  cmake -S "$1" -B "$2" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_COMPILER=clang++ -DPORTCULLIS_FUZZ=ON \
    -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="${PORTCULLIS_ASAN_OPT:--O0 -g1} -DNDEBUG" >/dev/null
}
