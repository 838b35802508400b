#!/usr/bin/env bash
# The serving engine under a fleet's connections and hostile clients (issue: the
# serving engine; review H1, H2, L6): 500 idle and 500 half-sent (slowloris)
# connections held open while skopeo pulls an image through the proxy; those
# connections cut at the head timeout; oversized request lines, header blocks
# and header counts answered 400/431 with the proxy's RSS unchanged; a client
# that stops reading cut after the send window; a GET with a body answered and
# its connection closed. Before the engine, the 64 worker threads were held by
# the first 64 idle connections and every other client waited.
source "$(dirname "$0")/lib.sh"
suite_init connections
need python3

start_upstream upstream || { not_ok "upstream registry starts" "see $T/upstream.log"; finish; }
UP=${ADDR[upstream]}
build_images || { not_ok "test images build"; finish; }
check "lab/small:v1 pushed into the upstream" \
  sk copy -q --dest-tls-verify=false "oci:$IMG_CACHE/oci:small" "docker://$UP/lab/small:v1" || finish
head -c $((48 << 20)) /dev/urandom >"$T/big.bin"
BIG=$(sha_of "$T/big.bin")
check "a 48 MiB blob pushed into the upstream" curl_push_blob "$UP" lab/blob "$T/big.bin" || finish

start_proxy proxy --upstream "upstream.test=http://$UP" --send-window 2 ||
  { not_ok "proxy starts" "$(tail -3 "$T/proxy.log")"; finish; }
P=${ADDR[proxy]}
PPORT=${P##*:}
PPID_=${PIDS[proxy]}
rss_kib() { awk '/^VmRSS:/{print $2}' "/proc/$PPID_/status"; }
fds() { find "/proc/$PPID_/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }

# ---------------------------------------------------------------- 1. 500 idle + 500 half-sent
ulimit -n 8192 2>/dev/null || true
"$PY" "$IT_DIR/hold_connections.py" "$PPORT" 500 500 "$T/ready" 25 >"$T/hold.json" 2>"$T/hold.err" &
HOLD=$!
for _ in $(seq 300); do [[ -s $T/ready ]] && break; sleep 0.1; done
check "1000 connections opened and held" test -s "$T/ready"
log "proxy descriptors with the connections held: $(fds)"
t0=$(date +%s.%N)
check "skopeo pulls lab/small:v1 through the proxy while 1000 connections are held" \
  sk copy -q --src-tls-verify=false "docker://$P/lab/small:v1" "oci:$T/pulled:x"
t1=$(date +%s.%N)
log "skopeo pull took $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b - a}') s with 1000 connections held"
code=$(curl -s -o /dev/null --max-time 5 -w '%{http_code}' -H "Accept: $ACCEPT_ALL" "http://$P/v2/lab/small/manifests/v1")
check_eq "a cached manifest answers within 5 s while the connections are held" 200 "$code"
wait "$HOLD"
log "holder: $(cat "$T/hold.json" "$T/hold.err" 2>/dev/null | tr '\n' ' ')"
check_eq "all 500 idle connections were opened" 500 "$(jq -r .idle_opened "$T/hold.json" 2>/dev/null)"
check_eq "all 500 half-sent connections were opened" 500 "$(jq -r .half_opened "$T/hold.json" 2>/dev/null)"
check_eq "the proxy cut every idle connection at the head timeout (10 s)" 500 "$(jq -r .idle_closed "$T/hold.json" 2>/dev/null)"
check_eq "the proxy cut every half-sent head at the head timeout (10 s)" 500 "$(jq -r .half_closed "$T/hold.json" 2>/dev/null)"
check_eq "no half-sent head was ever answered" 0 "$(jq -r .answered "$T/hold.json" 2>/dev/null)"
check "the proxy is still up after the held connections" is_running proxy

# ---------------------------------------------------------------- 2. oversized heads
rss0=$(rss_kib)
# raw REQUEST-FILE : the status line's code of the proxy's answer to the bytes of the file
raw() { "$PY" - "$PPORT" "$1" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
try:
    s.sendall(open(sys.argv[2], "rb").read())
except OSError:
    pass
data = b""
try:
    while True:
        b = s.recv(65536)
        if not b:
            break
        data += b
except OSError:
    pass
print(data[9:12].decode() if data.startswith(b"HTTP/") else "none", "closed", data.count(b"HTTP/1.1 "))
PY
}
printf 'GET /v2/%s HTTP/1.1\r\nHost: x\r\n\r\n' "$(head -c 9000 /dev/zero | tr '\0' a)" >"$T/line.req"
{ printf 'GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Big: '; head -c $((70 << 10)) /dev/zero | tr '\0' b; printf '\r\n\r\n'; } >"$T/block.req"
{ printf 'GET /v2/ HTTP/1.1\r\nHost: x\r\n'; for i in $(seq 101); do printf 'X-H%d: v\r\n' "$i"; done; printf '\r\n'; } >"$T/count.req"
{ printf 'GET /v2/ HTTP/1.1\r\n'; for i in $(seq 2000); do printf 'X-A%d: %s\r\n' "$i" "$(head -c 900 /dev/zero | tr '\0' a)"; done; } >"$T/endless.req"
check_eq "a 9 KiB request line -> 400, connection closed" "400 closed 1" "$(raw "$T/line.req")"
check_eq "a 70 KiB header block -> 431, connection closed" "431 closed 1" "$(raw "$T/block.req")"
check_eq "101 header fields -> 431, connection closed" "431 closed 1" "$(raw "$T/count.req")"
check_eq "a 1.8 MiB head that never ends -> 431, connection closed" "431 closed 1" "$(raw "$T/endless.req")"
for i in $(seq 30); do raw "$T/endless.req" >/dev/null; raw "$T/block.req" >/dev/null; done
rss1=$(rss_kib)
log "RSS before the oversized heads ${rss0} KiB, after 64 of them ${rss1} KiB"
check "RSS unchanged within 10 MiB after 64 oversized heads" test $((rss1 - rss0)) -lt 10240

# ---------------------------------------------------------------- 3. a client that stops reading
code=$(curl -s -o "$T/big.out" --max-time 60 -w '%{http_code}' "http://$P/v2/lab/blob/blobs/$BIG")
check_eq "the 48 MiB blob pulls whole through the proxy (cached now)" "200 $BIG" "$code $(sha_of "$T/big.out")"
stall=$("$PY" - "$PPORT" "$BIG" <<'PY'
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.connect(("127.0.0.1", int(sys.argv[1])))
s.sendall(f"GET /v2/lab/blob/blobs/{sys.argv[2]} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
time.sleep(8)  # read nothing: the proxy's writes stall
s.settimeout(10)
got = 0
try:
    while True:
        b = s.recv(1 << 20)
        if not b:
            break
        got += len(b)
except OSError:
    pass
print("cut" if got < (48 << 20) else "whole", got)
PY
)
log "stalled client: $stall"
check_eq "a client that stops reading is cut after the send window" cut "${stall%% *}"
check "the access log marks the stalled download as cut" grep -q '"cut":true' "$T/proxy.log"

# ---------------------------------------------------------------- 4. GET with a body
printf 'GET /v2/ HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nabcdeGET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n' >"$T/body.req"
check_eq "GET with a body -> answered, connection closed (the body is never a request)" "200 closed 1" "$(raw "$T/body.req")"
check "the proxy is still up" is_running proxy
finish
