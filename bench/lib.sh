# shellcheck shell=bash
# Shared by bench/run.sh and bench/connections.sh (sourced, never run): tools, the temp dir
# and its cleanup, starting and stopping the servers, test images, measuring helpers.
# The caller sets PY, BIN, OCI_MANIFEST, ACCEPT_ALL, WRK_THREADS, WRK_CONNS, WRK_SECS first.
# Sourcing installs missing tools, creates $W and sets the EXIT trap that stops every server.

say() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
die() { printf '[bench] ERROR: %s\n' "$*" >&2; exit 2; }

# ---------------------------------------------------------------- tools
ensure_tools() {
  local -A pkg=([curl]=curl [nginx]=nginx-light [wrk]=wrk [docker-registry]=docker-registry
                [openssl]=openssl [sha256sum]=coreutils [timeout]=coreutils [jq]=jq)
  local t missing=()
  for t in "${!pkg[@]}"; do command -v "$t" >/dev/null 2>&1 || missing+=("${pkg[$t]}"); done
  [[ -x $PY ]] || missing+=(python3)
  ((${#missing[@]})) || return 0
  [[ $(id -u) -eq 0 ]] || die "missing tools (${missing[*]}); install them (apt-get install ${missing[*]})"
  say "installing ${missing[*]} (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null 2>&1 ||
    { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; } ||
    die "apt-get install ${missing[*]} failed"
}
ensure_tools
[[ -x $BIN ]] || die "portcullis binary $BIN not found (build: cmake --build build, or pass --bin)"

# ---------------------------------------------------------------- temp dir, processes
W=$(mktemp -d /tmp/portcullis-bench.XXXXXX)
chmod 755 "$W"   # nginx workers run as nobody and read files under it
declare -A PIDS=() ADDR=()
ORDER=()
USED_PORTS=()
RAW=$W/raw.tsv
: >"$RAW"
HELPERS=()   # pids of helper processes (samplers, client batches)
BG_CRASHED=0  # set by stop_bg when a server died of a signal it was not sent

cleanup() {
  local rc=$? i name p
  trap - EXIT
  trap '' INT TERM
  for p in "${HELPERS[@]}"; do kill "$p" 2>/dev/null || true; done
  for ((i = ${#ORDER[@]} - 1; i >= 0; i--)); do stop_bg "${ORDER[$i]}"; done
  ((BG_CRASHED == 0 || rc != 0)) || rc=1
  if ((KEEP)); then echo "[bench] kept $W"; else rm -rf --one-file-system "$W"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
  local p i
  for i in $(seq 20); do
    p=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
    if [[ " ${USED_PORTS[*]-} " != *" $p "* ]]; then USED_PORTS+=("$p"); echo "$p"; return 0; fi
  done
  return 1
}

# start_bg NAME CMD... : CMD in the background, cwd $W, output appended to $W/NAME.log
start_bg() {
  local name=$1; shift
  env -C "$W" "$@" >>"$W/$name.log" 2>&1 </dev/null &
  PIDS[$name]=$!
  [[ " ${ORDER[*]-} " == *" $name "* ]] || ORDER+=("$name")
}

# stop_bg NAME : TERM the PID we started, wait up to 15 s, then KILL
stop_bg() {
  local name=$1 pid i
  pid=${PIDS[$name]:-}
  [[ -n $pid ]] || return 0
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 75); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
  fi
  local st=0
  wait "$pid" 2>/dev/null || st=$?
  # 143 and 137: our TERM and KILL. Any other signal (SIGABRT 134, SIGSEGV 139) is
  # a crash: logged as an error (the run then exits 1) with the process's log kept.
  if ((st > 128 && st != 143 && st != 137)); then
    local keep=/tmp/portcullis-bench-crash-$name-$pid.log
    cp "$W/$name.log" "$keep" 2>/dev/null || true
    echo "$name (pid $pid) died of signal $((st - 128)); its log: $keep" >>"$W/errors.log"
    echo "[bench] ERROR: $name (pid $pid) died of signal $((st - 128)); its log: $keep" >&2
    BG_CRASHED=1
  fi
  PIDS[$name]=""
}

# wait_http URL NAME : until URL answers (any status); fails when NAME died or after 30 s
wait_http() {
  local url=$1 name=$2 i
  for i in $(seq 150); do
    curl -s -o /dev/null --max-time 2 "$url" && return 0
    kill -0 "${PIDS[$name]}" 2>/dev/null || { tail -5 "$W/$name.log" >&2; die "$name exited during start"; }
    sleep 0.2
  done
  die "timeout waiting for $name at $url"
}

# ---------------------------------------------------------------- servers
registry_yml() { # FILE NAME PORT DATADIR [REMOTE]
  cat >"$1" <<YML
version: 0.1
log:
  level: info
  fields: {service: $2}
storage:
  filesystem: {rootdirectory: $4}
  delete: {enabled: true}
  cache: {blobdescriptor: inmemory}
  maintenance:
    uploadpurging: {enabled: false}
http:
  addr: 127.0.0.1:$3
  headers:
    X-Content-Type-Options: [nosniff]
YML
  [[ -z ${5:-} ]] || printf 'proxy:\n  remoteurl: %s\n' "$5" >>"$1"
}

start_registry() { # NAME [REMOTE_URL]   (data in $W/NAME-data, fresh)
  local name=$1 remote=${2:-} port
  port=$(free_port)
  rm -rf "$W/$name-data"; mkdir -p "$W/$name-data"
  registry_yml "$W/$name.yml" "$name" "$port" "$W/$name-data" "$remote"
  ADDR[$name]=127.0.0.1:$port
  start_bg "$name" docker-registry serve "$W/$name.yml"
  wait_http "http://127.0.0.1:$port/v2/" "$name"
}

start_portcullis() { # NAME EXTRA_ARGS...   (data in $W/NAME-data, fresh; binary $PC_EXE, else $W/portcullis)
  local name=$1 port; shift
  port=$(free_port)
  rm -rf "$W/$name-data"; mkdir -p "$W/$name-data"
  ADDR[$name]=127.0.0.1:$port
  start_bg "$name" "${PC_EXE:-$W/portcullis}" serve --listen "127.0.0.1:$port" --data-dir "$W/$name-data" \
    --upstream "bench.test=http://${ADDR[upstream]}" --default-upstream bench.test --admin-listen off "$@"
  wait_http "http://127.0.0.1:$port/v2/" "$name"
}

start_nginx() {
  local port d=$W/nginx
  port=$(free_port)
  mkdir -p "$d/logs" "$d/tmp" "$d/root"
  cat >"$d/nginx.conf" <<CONF
daemon off;
worker_processes auto;
pid $d/nginx.pid;
error_log $d/logs/error.log warn;
worker_rlimit_nofile ${NGINX_CONNECTIONS:-1024};
events { worker_connections ${NGINX_CONNECTIONS:-1024}; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  tcp_nodelay on;
  keepalive_requests 1000000;
  keepalive_timeout 60s;
  default_type application/octet-stream;
  client_body_temp_path $d/tmp/body;
  proxy_temp_path $d/tmp/proxy;
  fastcgi_temp_path $d/tmp/fastcgi;
  uwsgi_temp_path $d/tmp/uwsgi;
  scgi_temp_path $d/tmp/scgi;
  server {
    listen 127.0.0.1:$port;
    root $d/root;
  }
}
CONF
  ADDR[nginx]=127.0.0.1:$port
  start_bg nginx nginx -p "$d" -c "$d/nginx.conf"
  wait_http "http://127.0.0.1:$port/" nginx
}

# ---------------------------------------------------------------- images
# keystream FILE BYTES SEED : deterministic incompressible bytes (AES-256-CTR of zeros)
keystream() {
  { openssl enc -aes-256-ctr -nosalt -pass "pass:$3" -pbkdf2 </dev/zero 2>/dev/null || true; } | head -c "$2" >"$1"
  [[ $(stat -c %s "$1") -eq $2 ]] || die "could not generate $1"
}
sha() { sha256sum "$1" | cut -d' ' -f1; }

# push_blob REPO FILE DIGEST : monolithic upload (POST, then PUT with the body), skipped when present
push_blob() {
  local repo=$1 file=$2 dg=$3 up=${ADDR[upstream]} loc sep
  [[ $(curl -s -o /dev/null -w '%{http_code}' -I "http://$up/v2/$repo/blobs/$dg") == 200 ]] && return 0
  loc=$(curl -sS -f -X POST -D - -o /dev/null "http://$up/v2/$repo/blobs/uploads/" |
        awk 'tolower($1)=="location:"{print $2}' | tr -d '\r')
  [[ -n $loc ]] || die "no upload location for $repo"
  [[ $loc == http* ]] || loc="http://$up$loc"
  sep='?'; [[ $loc == *\?* ]] && sep='&'
  curl -sS -f --max-time 600 -X PUT -H 'Content-Type: application/octet-stream' -T "$file" \
    "$loc${sep}digest=$dg" -o /dev/null || die "upload of $file to $repo failed"
}

# make_image REPO TAG LAYER_FILE LABEL : pushes config + layer + manifest; sets M_DIGEST, M_FILE
make_image() {
  local repo=$1 tag=$2 layer=$3 label=$4 d=$W/img lsz ldg cdg csz
  mkdir -p "$d"
  lsz=$(stat -c %s "$layer"); ldg=sha256:$(sha "$layer")
  printf '{"architecture":"amd64","config":{"Labels":{"org.example.portcullis.bench":"%s"}},"created":"1970-01-01T00:00:00Z","os":"linux","rootfs":{"type":"layers","diff_ids":["%s"]}}' \
    "$label" "$ldg" >"$d/config-$label.json"
  cdg=sha256:$(sha "$d/config-$label.json"); csz=$(stat -c %s "$d/config-$label.json")
  printf '{"schemaVersion":2,"mediaType":"%s","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"%s","size":%s}],"annotations":{"org.example.portcullis.bench":"%s"}}' \
    "$OCI_MANIFEST" "$cdg" "$csz" "$ldg" "$lsz" "$label" >"$d/manifest-$label.json"
  push_blob "$repo" "$layer" "$ldg"
  push_blob "$repo" "$d/config-$label.json" "$cdg"
  curl -sS -f -X PUT -H "Content-Type: $OCI_MANIFEST" --data-binary "@$d/manifest-$label.json" \
    "http://${ADDR[upstream]}/v2/$repo/manifests/$tag" -o /dev/null || die "manifest push $repo:$tag failed"
  M_FILE=$d/manifest-$label.json
  M_DIGEST=sha256:$(sha "$M_FILE")
  L_DIGEST=$ldg
}

# ---------------------------------------------------------------- measuring helpers
record() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$RAW"; }   # KEY SERVER VALUE ("nan" = failed)
note() { printf 'note\t%s\t%s\n' "$1" "$2" >>"$RAW"; }       # SERVER TEXT

# pull_n URL N SIZE : N concurrent curl GETs; prints aggregate MB/s (10^6 B/s) or nan
pull_n() {
  local url=$1 n=$2 size=$3 i t0 t1 bad=0 pids=() d
  d=$(mktemp -d -p "$W")
  t0=$EPOCHREALTIME
  for ((i = 1; i <= n; i++)); do
    curl -s -o /dev/null --max-time 300 -w '%{http_code} %{size_download}\n' "$url" >"$d/$i" 2>&1 &
    pids+=($!)
  done
  for i in "${pids[@]}"; do wait "$i" || bad=1; done
  t1=$EPOCHREALTIME
  for ((i = 1; i <= n; i++)); do [[ $(cat "$d/$i") == "200 $size" ]] || { bad=1; echo "pull $url: $(cat "$d/$i")" >>"$W/errors.log"; }; done
  rm -rf "$d"
  if ((bad)); then echo nan; return; fi
  awk -v n="$n" -v s="$size" -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f\n", n*s/(b-a)/1e6}'
}

# pull_clients URL N SIZE FILE : N concurrent curl GETs; prints the wall time in s (or nan) and
# writes each client's own time (curl's time_total, s) to FILE, one a line, fastest first
pull_clients() {
  local url=$1 n=$2 size=$3 file=$4 i t0 t1 bad=0 pids=() d
  d=$(mktemp -d -p "$W")
  t0=$EPOCHREALTIME
  for ((i = 1; i <= n; i++)); do
    curl -s -o /dev/null --max-time 300 -w '%{http_code} %{size_download} %{time_total}\n' "$url" >"$d/$i" 2>&1 &
    pids+=($!)
  done
  for i in "${pids[@]}"; do wait "$i" || bad=1; done
  t1=$EPOCHREALTIME
  : >"$file"
  for ((i = 1; i <= n; i++)); do
    read -r code got secs <"$d/$i" || true
    if [[ "$code $got" == "200 $size" ]]; then echo "$secs" >>"$file"
    else bad=1; echo "pull $url: $(cat "$d/$i")" >>"$W/errors.log"; fi
  done
  rm -rf "$d"
  sort -g -o "$file" "$file"
  if ((bad)); then echo nan; return; fi
  awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f\n", b-a}'
}

# listen_overflows : the kernel's TcpExt ListenOverflows counter (SYNs/ACKs dropped because an
# accept queue was full; system-wide, so other processes on the machine can add to it)
listen_overflows() {
  awk '/^TcpExt:/ { if (!h) { for (i = 1; i <= NF; i++) if ($i == "ListenOverflows") c = i; h = 1 } else print $c }' /proc/net/netstat
}

# run_wrk NAME URL : prints "REQ_PER_S P99_MS TIMEOUTS OVERFLOWS" (rps/p99 "nan" when wrk failed or
# saw non-2xx answers); wrk output kept in $W/wrk-all.txt
run_wrk() {
  local name=$1 url=$2 out=$W/wrk-$1.txt o0 o1
  o0=$(listen_overflows)
  wrk -t"$WRK_THREADS" -c"$WRK_CONNS" -d"${WRK_SECS}s" --timeout 5s --latency -H "Accept: $ACCEPT_ALL" "$url" >"$out" 2>&1 || true
  o1=$(listen_overflows)
  { echo "### $name $url"; cat "$out"; } >>"$W/wrk-all.txt"
  "$PY" - "$out" "$((o1 - o0))" <<'PY'
import re, sys
t = open(sys.argv[1]).read()
rps = re.search(r"Requests/sec:\s+([\d.]+)", t)
p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", t, re.M)
bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", t)
sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", t)
timeouts = int(sock.group(4)) if sock else 0
if not rps or not p99 or (bad and int(bad.group(1)) > 0):
    print("nan nan", timeouts, sys.argv[2]); sys.exit()
f = {"us": 1e-3, "ms": 1.0, "s": 1e3}[p99.group(2)]
print(rps.group(1), round(float(p99.group(1)) * f, 3), timeouts, sys.argv[2])
PY
}

# rss_sampler FILE PIDS... : appends the summed VmRSS (KiB) of PIDS to FILE every 100 ms until
# killed (at most 300 s). One short line per append, so a kill never leaves a half-written or
# truncated file (the old sampler rewrote the file with `>` each time: a kill between the
# truncation and the write, or before the first write, read as 0 MiB).
rss_sampler() {
  local file=$1 i; shift
  for i in $(seq 3000); do echo "$(rss_sum VmRSS "$@")" >>"$file"; sleep 0.1; done
}
# max_of FILE : the largest number in FILE (one a line), 0 when none
max_of() { awk 'BEGIN{m=0} $1 ~ /^[0-9]+$/ && $1+0 > m {m=$1+0} END{print m}' "$1" 2>/dev/null || echo 0; }

# server_pids NAME : the PID we started and its children (nginx workers)
server_pids() { local p=${PIDS[$1]}; echo "$p"; pgrep -P "$p" 2>/dev/null || true; }
# rss_sum FIELD PIDS... : sum of FIELD (VmRSS or VmHWM) over PIDS, in KiB
rss_sum() {
  local field=$1 p s=0 v; shift
  for p in "$@"; do v=$(awk -v f="$field:" '$1==f{print $2}' "/proc/$p/status" 2>/dev/null || true); s=$((s + ${v:-0})); done
  echo "$s"
}

curl_time_ms() { # URL : time_total in ms of a manifest GET, or nan unless 200
  local r
  r=$(curl -s -o /dev/null --max-time 60 -H "Accept: $ACCEPT_ALL" -w '%{http_code} %{time_total}' "$1" || true)
  [[ $r == 200\ * ]] || { echo "curl $1: $r" >>"$W/errors.log"; echo nan; return; }
  awk -v t="${r#* }" 'BEGIN{printf "%.3f\n", t*1000}'
}

# upstream blob GET bytes since log line L: prints "GETS BYTES"
upstream_blob_bytes_since() {
  tail -n +"$(($1 + 1))" "$W/upstream.log" | awk '
    /^127\.0\.0\.1 - - \[[^]]*\] "GET \/v2\/[^ ]+\/blobs\/sha256:[0-9a-f]+ HTTP\/[0-9.]+" [0-9]+ [0-9]+/ {
      for (i = 1; i <= NF; i++) if ($i ~ /^HTTP\/[0-9.]+"$/) { n++; b += $(i + 2); break } }
    END { printf "%d %d\n", n, b }'
}
log_lines() { wc -l <"$W/upstream.log"; }
# upstream_quiet : waits until the upstream's access log has not grown for 1 s (at most 10 s), so
# that a GET still running after the clients finished (distribution stores a cold blob through a
# GET of its own, beside the one it streams to the client) is counted with them
upstream_quiet() {
  local n m i
  n=$(log_lines)
  for ((i = 0; i < 10; i++)); do
    sleep 1
    m=$(log_lines)
    ((m == n)) && return 0
    n=$m
  done
}

