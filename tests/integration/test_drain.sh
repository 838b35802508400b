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
# positive control for the access-log count used at the end (0 or "" would also mean "no log")
b0=$(upstream_blob_gets "$T/upstream.log")
check "the 200 MiB blob is cached through the proxy" \
  bash -c "curl -sf http://$P/v2/lab/big/blobs/$BLOB -o /dev/null"
b1=$(upstream_blob_gets "$T/upstream.log")
check_true "control: the upstream access log counts that blob GET (exactly 1)" "blob GETs '$b0' -> '$b1'" \
  bash -c '[[ $1 =~ ^[0-9]+$ && $2 =~ ^[0-9]+$ ]] && (($2 - $1 == 1))' _ "$b0" "$b1"

# A slow client (about 8 s for 200 MiB); SIGTERM once it has received its first MiB.
curl -sf --limit-rate 25M "http://$P/v2/lab/big/blobs/$BLOB" -o "$T/slow.body" 2>"$T/slow.err" &
CURL=$!
got=0
for _ in $(seq 100); do   # up to 20 s
  (($(stat -c %s "$T/slow.body" 2>/dev/null || echo 0) >= 1048576)) && { got=1; break; }
  kill -0 "$CURL" 2>/dev/null || break
  sleep 0.2
done
check_eq "the slow transfer is under way (1 MiB received) before SIGTERM" 1 "$got"
PID=${PIDS[proxy]}
kill -TERM "$PID"
# a new request must get 503 while the transfer drains (poll: the signal is handled
# asynchronously, so the first tries may still be served); 000 = a dead proxy, never a pass
code=none
for _ in $(seq 25); do   # up to ~5 s
  code=$(curl -s -D "$T/new.hdr" -o "$T/new.body" --max-time 2 -w '%{http_code}' "http://$P/v2/")
  [[ $code == 503 || $code == 000 ]] && break
  sleep 0.2
done
check_eq "after SIGTERM a new request is turned away with 503" 503 "$code"
check_true "... with Connection: close" "$(tr -d '\r' <"$T/new.hdr" | head -8 | tr '\n' ' ')" \
  grep -qiE '^connection:[[:space:]]*close' <(tr -d '\r' <"$T/new.hdr")
check_true "... while the slow transfer is still running (the drain was observed)" "curl already done" kill -0 "$CURL"
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
