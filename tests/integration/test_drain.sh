#!/usr/bin/env bash
# SIGTERM drains: the proxy turns new requests away at once (503, Connection:
# close), lets a running blob transfer finish (within its 30 s deadline), closes RocksDB
# cleanly and exits 0; the next start finds nothing half written.
source "$(dirname "$0")/lib.sh"
suite_init drain

start_upstream upstream || { not_ok "upstream registry starts" "see $T/upstream.log"; finish; }
UP=${ADDR[upstream]}
check "test images pushed into the upstream" push_images "$UP" || finish
start_proxy proxy --upstream "upstream.test=http://$UP" --admin-listen off ||
  { not_ok "proxy starts" "$(tail -3 "$T/proxy.log")"; finish; }
P=${ADDR[proxy]}
BLOB=$(largest_layer "$UP" lab/big v1)
check "the 200 MiB blob is cached through the proxy" \
  bash -c "curl -sf http://$P/v2/lab/big/blobs/$BLOB -o /dev/null"

# A slow client (about 4 s for 200 MiB), then SIGTERM a second into it.
curl -sf --limit-rate 50M "http://$P/v2/lab/big/blobs/$BLOB" -o "$T/slow.body" 2>"$T/slow.err" &
CURL=$!
sleep 1
PID=${PIDS[proxy]}
kill -TERM "$PID"
sleep 0.5
code=$(curl -s -o "$T/new.body" --max-time 3 -w '%{http_code}' "http://$P/v2/" || true)
check_true "after SIGTERM a new request is turned away (503, or no answer)" "HTTP $code $(head -c 200 "$T/new.body")" \
  bash -c "[[ $code == 503 || $code == 000 ]]"
wait "$CURL"; rc=$?
check_eq "the transfer running at SIGTERM completes (curl exit 0)" 0 "$rc"
check_eq "... with the right bytes" "${BLOB#sha256:}" "$(sha256sum "$T/slow.body" | cut -d' ' -f1)"
for _ in $(seq 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.2; done
check_true "the proxy exits after the drain" "still running" bash -c "! kill -0 $PID 2>/dev/null"
wait "$PID" 2>/dev/null; rc=$?
PIDS[proxy]=""
check_eq "... with exit status 0" 0 "$rc"
check_true "the log says it stopped cleanly" "$(tail -2 "$T/proxy.log")" grep -q '"msg":"stopped"' "$T/proxy.log"

start_proxy proxy --upstream "upstream.test=http://$UP" --admin-listen off ||
  { not_ok "proxy restarts on the same data dir" "$(tail -3 "$T/proxy.log")"; finish; }
check_true "the restart found nothing half written" "$(grep half-written "$T/proxy.log")" \
  bash -c "! grep -q 'half-written' '$T/proxy.log'"
b0=$(upstream_blob_gets "$T/upstream.log")
got=$(curl -sf "http://$P/v2/lab/big/blobs/$BLOB" | sha256sum | cut -d' ' -f1)
check_eq "after the restart the blob is served from the cache, whole" "${BLOB#sha256:} 0" \
  "$got $(($(upstream_blob_gets "$T/upstream.log") - b0))"
finish
