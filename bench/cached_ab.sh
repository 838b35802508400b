#!/usr/bin/env bash
# Cached-blob GET throughput of two Portcullis binaries, side by side: per round and binary, a
# fresh proxy fills its cache with one cold GET of a 1 GiB blob, waits 3 s (the store is written
# behind the client), makes one warm GET, then times three single-client GETs (MB/s = 10^6 B/s).
# The binaries alternate, so the machine's drift falls on both. Never asserts.
#
# Usage: bench/cached_ab.sh BIN_A BIN_B [ROUNDS]   (default 3 rounds)
# Starts a docker-registry upstream on 127.0.0.1; everything stops by PID at exit.
set -euo pipefail
export LC_ALL=C
BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
A=${1:?usage: bench/cached_ab.sh BIN_A BIN_B [ROUNDS]} B=${2:?usage: bench/cached_ab.sh BIN_A BIN_B [ROUNDS]}
ROUNDS=${3:-3}
[[ $ROUNDS =~ ^[1-9][0-9]?$ ]] || { echo "cached_ab.sh: ROUNDS must be 1..99" >&2; exit 2; }
PY=/usr/bin/python3 BIN=$A KEEP=0
OCI_MANIFEST=application/vnd.oci.image.manifest.v1+json
# shellcheck source=bench/lib.sh
source "$BENCH_DIR/lib.sh"
[[ -x $B ]] || die "portcullis binary $B not found"
cp "$A" "$W/portcullis-A"
cp "$B" "$W/portcullis-B"

start_registry upstream
F=$W/big.bin
keystream "$F" $((1024 * 1024 * 1024)) cached-ab
DG=sha256:$(sha "$F")
push_blob bench/big "$F" "$DG"
SIZE=$(stat -c %s "$F")
for ((r = 1; r <= ROUNDS; r++)); do
  for which in A B; do
    PC_EXE=$W/portcullis-$which start_portcullis "pc$which$r"
    url="http://${ADDR[pc$which$r]}/v2/bench/big/blobs/$DG"
    curl -s -o /dev/null --max-time 300 "$url"
    sleep 3
    curl -s -o /dev/null --max-time 300 "$url"
    res=()
    for i in 1 2 3; do res+=("$(pull_n "$url" 1 "$SIZE")"); done
    echo "round $r $which: ${res[*]} MB/s"
    stop_bg "pc$which$r"
  done
done
