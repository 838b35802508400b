#!/usr/bin/env bash
# Instructions per cached-manifest request (callgrind: independent of the machine's load).
#
# Usage: bench/callgrind_manifest.sh [PORTCULLIS_BIN]   (default build/cli/portcullis)
# Env:   SECS (wrk duration, default 10), CONNS (default 64), PC_ARGS (more serve flags)
#
# Starts a docker-registry upstream on 127.0.0.1 with one small OCI image, then `portcullis
# serve` under `valgrind --tool=callgrind`, warms the manifest into the cache, runs `wrk` on
# it, stops both by PID and prints: requests served (access-log lines), the total
# instructions, those of startup (Proxy::Open), and (total - startup) / requests. The
# callgrind file is kept (its path is printed) for callgrind_annotate.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-$PWD/build/cli/portcullis}
for t in valgrind callgrind_annotate wrk docker-registry curl python3; do
  command -v "$t" >/dev/null || { echo "callgrind_manifest.sh: $t is missing" >&2; exit 2; }
done
W=$(mktemp -d /tmp/portcullis-callgrind.XXXXXX)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
RP= PP=
cleanup() {
  [[ -z $PP ]] || { kill -TERM "$PP" 2>/dev/null || true; wait "$PP" 2>/dev/null || true; }
  [[ -z $RP ]] || { kill "$RP" 2>/dev/null || true; wait "$RP" 2>/dev/null || true; }
}
trap cleanup EXIT
UPORT=$(free_port) PPORT=$(free_port)
cat >"$W/reg.yml" <<YML
version: 0.1
log: {level: error}
storage:
  filesystem: {rootdirectory: $W/reg}
http:
  addr: 127.0.0.1:$UPORT
YML
docker-registry serve "$W/reg.yml" >"$W/reg.log" 2>&1 & RP=$!
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$UPORT/v2/" >/dev/null && break; sleep 0.2; done
cfg='{"architecture":"amd64","os":"linux"}'; printf '%s' "$cfg" >"$W/cfg"
cd_=sha256:$(sha256sum "$W/cfg" | cut -d' ' -f1)
loc=$(curl -sS -X POST -D - -o /dev/null "http://127.0.0.1:$UPORT/v2/b/c/blobs/uploads/" | awk 'tolower($1)=="location:"{print $2}' | tr -d '\r')
[[ $loc == http* ]] || loc="http://127.0.0.1:$UPORT$loc"
curl -sf -X PUT -H 'Content-Type: application/octet-stream' --data-binary @"$W/cfg" "$loc&digest=$cd_" -o /dev/null
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%s},"layers":[]}' \
  "$cd_" ${#cfg} >"$W/m.json"
curl -sf -X PUT -H "Content-Type: application/vnd.oci.image.manifest.v1+json" --data-binary @"$W/m.json" \
  "http://127.0.0.1:$UPORT/v2/b/c/manifests/v1" -o /dev/null
md=sha256:$(sha256sum "$W/m.json" | cut -d' ' -f1)
# shellcheck disable=SC2086
valgrind --tool=callgrind --callgrind-out-file="$W/callgrind.out" "$BIN" serve --listen "127.0.0.1:$PPORT" \
  --data-dir "$W/data" --upstream "b.test=http://127.0.0.1:$UPORT" --default-upstream b.test --admin-listen off \
  ${PC_ARGS:-} >"$W/serve.log" 2>&1 & PP=$!
for _ in $(seq 300); do curl -sf "http://127.0.0.1:$PPORT/v2/" >/dev/null && break; sleep 0.2; done
M="http://127.0.0.1:$PPORT/v2/b/c/manifests/$md"
curl -sf -o /dev/null -H 'Accept: application/vnd.oci.image.manifest.v1+json' "$M"
wrk -t2 -c"${CONNS:-64}" -d"${SECS:-10}s" -H 'Accept: application/vnd.oci.image.manifest.v1+json' "$M" | grep -E "requests in"
kill -TERM "$PP"; wait "$PP" || true; PP=
n=$(grep -c '"access"' "$W/serve.log" || true)
total=$(callgrind_annotate "$W/callgrind.out" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
startup=$(callgrind_annotate --inclusive=yes "$W/callgrind.out" 2>/dev/null | awk '/Proxy::Open\(/ && !s {gsub(",", "", $1); s = $1} END {print s}')
echo "requests: $n; instructions: total $total, startup ${startup:-0}; per request: $(( (total - ${startup:-0}) / (n > 0 ? n : 1) ))"
echo "callgrind file: $W/callgrind.out"
