# shellcheck shell=bash
# Shared harness for the integration suites (sourced, never run).
#
# A suite does:   source "$(dirname "$0")/lib.sh"; suite_init NAME; ...checks...; finish
# Environment:    PORTCULLIS_BIN   absolute path of the portcullis binary (required)
#                 PORTCULLIS_SRC   source tree (informational)
#                 PORTCULLIS_TEST_CACHE  where test images are built once
#                                  (default /var/tmp/portcullis-test-images)
#                 PORTCULLIS_KEEP_TMP=1  keep the suite's temp dir (logs) after the run
#
# Everything runs on 127.0.0.1, in a private `mktemp -d` dir ($T). Every process started
# with start_bg is stopped by its own PID in the EXIT trap (TERM, wait, KILL). Lines added
# to /etc/hosts carry a marker with this shell's PID and are removed in the trap.
# Output: one "ok - ..." / "not ok - ... : reason" line per check, then "N passed, M failed".

set -uo pipefail
export LC_ALL=C

IT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PY=/usr/bin/python3            # Debian's python (python3 on PATH may be a pyenv build)
DOCKER_CLI=/usr/bin/docker     # Debian's docker client (matches dockerd 20.10)
IMG_CACHE="${PORTCULLIS_TEST_CACHE:-/var/tmp/portcullis-test-images}"
IMG_CACHE_VERSION=1            # bump when build_images changes what it builds

# Accept list for manifests: distribution 2.8 needs the full list (see formats.md)
ACCEPT_ALL='application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json'

PASS=0
FAIL=0
SUITE=""
T=""
FINISHED=0
declare -A PIDS=()      # name -> pid
declare -A ADDR=()      # name -> 127.0.0.1:PORT
declare -a ORDER=()     # start order (stopped in reverse)
declare -a USED_PORTS=()
HOSTS_MARK=""

# ---------------------------------------------------------------- logging / checks
log()    { printf '# %s\n' "$*" >&3; }   # fd 3 = the suite's stdout, also inside check
ok()     { PASS=$((PASS + 1)); printf 'ok - %s\n' "$1"; }
not_ok() { FAIL=$((FAIL + 1)); printf 'not ok - %s : %s\n' "$1" "$(printf '%s' "${2:-failed}" | tr '\n' ' ' | cut -c1-400)"; }

# check DESC CMD... : ok when CMD exits 0; the reason is the last lines of its output.
# The output of the last check is kept in $T/last.out.
check() {
  local desc=$1 rc; shift
  "$@" >"$T/last.out" 2>&1
  rc=$?
  if ((rc == 0)); then ok "$desc"; return 0; fi
  not_ok "$desc" "exit $rc: $(grep -v '^[[:space:]]*$' "$T/last.out" | tail -3)"
  return 1
}

# check_eq DESC EXPECTED ACTUAL
check_eq() {
  if [[ "$2" == "$3" ]]; then ok "$1"; return 0; fi
  not_ok "$1" "expected '$2', got '$3'"; return 1
}

# check_true DESC REASON-IF-FALSE CMD... : like check but with a fixed reason
check_true() {
  local desc=$1 reason=$2; shift 2
  if "$@" >"$T/last.out" 2>&1; then ok "$desc"; return 0; fi
  not_ok "$desc" "$reason"; return 1
}

# need TOOL... : a missing prerequisite is a failure (and ends the suite)
need() {
  local t missing=()
  for t in "$@"; do command -v "$t" >/dev/null 2>&1 || missing+=("$t"); done
  if ((${#missing[@]})); then
    not_ok "prerequisites present" "missing: ${missing[*]}"
    finish
  fi
}

# ---------------------------------------------------------------- lifecycle
exec 3>&1
suite_init() {
  SUITE=$1
  T=$(mktemp -d "/tmp/portcullis-it-$SUITE.XXXXXX") || { echo "not ok - mktemp"; echo "0 passed, 1 failed"; exit 1; }
  chmod 755 "$T"
  HOSTS_MARK="# portcullis-it pid=$$"
  trap _on_exit EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  log "suite $SUITE, temp dir $T"
  [[ -n ${PORTCULLIS_BIN:-} && -x ${PORTCULLIS_BIN:-} ]] || {
    not_ok "PORTCULLIS_BIN is an executable" "PORTCULLIS_BIN='${PORTCULLIS_BIN:-}'"; finish; }
  [[ -x $PY ]] || { not_ok "prerequisites present" "missing $PY"; finish; }
  need curl jq docker-registry skopeo sha256sum timeout flock
}

finish() { FINISHED=1; exit 0; }

_on_exit() {
  local rc=$?
  # only the suite's own shell cleans up (a forked child that still has our traps just leaves)
  [[ $BASHPID == "$$" ]] || exit "$rc"
  trap - EXIT
  trap '' INT TERM   # a signal during cleanup must not cut it short (stop_bg is bounded)
  if [[ $FINISHED != 1 ]]; then
    not_ok "suite ran to the end" "aborted (exit status $rc) before finish"
  fi
  _cleanup
  if ((FAIL > 0)) && [[ -n $T && -d $T ]]; then
    local f
    for f in "$T"/*.log; do
      [[ -f $f ]] || continue
      case $(basename "$f") in proxy*|portcullis*|lying*) ;; *) continue ;; esac
      log "---- last lines of $(basename "$f")"
      tail -n 15 "$f" | cut -c1-300 | sed 's/^/#   /'
    done
  fi
  # mounts a suite made under $T (a small tmpfs data dir) go even when $T is kept
  [[ -n $T && -d $T ]] && _umount_under "$T"
  if [[ ${PORTCULLIS_KEEP_TMP:-0} == 1 ]]; then
    log "kept $T"
  elif [[ -n $T && -d $T ]]; then
    rm -rf --one-file-system "$T" 2>/dev/null || log "could not remove $T (something still mounted?)"
  fi
  echo "$PASS passed, $FAIL failed"
  if ((FAIL > 0)); then exit 1; fi
  exit 0
}

_umount_under() {
  local m
  command -v findmnt >/dev/null || return 0
  findmnt -rn -o TARGET 2>/dev/null | grep "^$1/" | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
}

_cleanup() {
  local i name
  for ((i = ${#ORDER[@]} - 1; i >= 0; i--)); do
    name=${ORDER[$i]}
    stop_bg "$name"
  done
  hosts_restore
}

# ---------------------------------------------------------------- processes
# free_port : prints a free TCP port on 127.0.0.1 (not one handed out before in this suite)
free_port() {
  local p i
  for i in $(seq 20); do
    p=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()') || return 1
    if [[ " ${USED_PORTS[*]} " != *" $p "* ]]; then USED_PORTS+=("$p"); echo "$p"; return 0; fi
  done
  return 1
}

# start_bg NAME CMD... : start CMD in the background; stdout+stderr appended to $T/NAME.log.
# (No setsid: peers stay in the suite's process group, so a runner that kills the group on
# timeout takes them along; the EXIT trap stops them by PID otherwise.)
start_bg() {
  local name=$1; shift
  if [[ -n ${PIDS[$name]:-} ]] && kill -0 "${PIDS[$name]}" 2>/dev/null; then
    log "start_bg: $name already running"; return 1
  fi
  env -C "$T" "$@" >>"$T/$name.log" 2>&1 </dev/null &   # cwd $T: stray files (cores) land there
  PIDS[$name]=$!
  [[ " ${ORDER[*]-} " == *" $name "* ]] || ORDER+=("$name")
  return 0
}

# stop_bg NAME : TERM the PID we started, wait up to ~15 s, then KILL
stop_bg() {
  local name=$1 pid i
  pid=${PIDS[$name]:-}
  [[ -n $pid ]] || return 0
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 75); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then
      log "stop_bg: $name (pid $pid) ignored TERM, sending KILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  wait "$pid" 2>/dev/null || true
  PIDS[$name]=""
}

is_running() { [[ -n ${PIDS[$1]:-} ]] && kill -0 "${PIDS[$1]}" 2>/dev/null; }

# wait_http URL [SECONDS] [NAME] : until URL answers any HTTP status (fails early if NAME died)
wait_http() {
  local url=$1 secs=${2:-30} name=${3:-} i
  for i in $(seq $((secs * 5))); do
    curl -s -o /dev/null --max-time 2 "$url" && return 0
    if [[ -n $name ]] && ! is_running "$name"; then
      log "$name exited while waiting for $url"; return 1
    fi
    sleep 0.2
  done
  log "timeout waiting for $url"; return 1
}

# wait_sock PATH [SECONDS]
wait_sock() {
  local i
  for i in $(seq $((${2:-30} * 5))); do [[ -S $1 ]] && return 0; sleep 0.2; done
  log "timeout waiting for socket $1"; return 1
}

# ---------------------------------------------------------------- /etc/hosts
# hosts_pin NAME... : map NAMEs to 127.0.0.1 until the suite ends
# Suites run two at a time (ctest -j2) and each edits /etc/hosts: every edit
# holds this lock, so a rewrite never drops a line another suite just added.
HOSTS_LOCK=/tmp/portcullis-it-hosts.lock
_hosts_locked() { # CMD ARGS...: CMD under the lock, in this shell (its counters count)
  local fd rc=0
  exec {fd}>>"$HOSTS_LOCK" || return 1
  flock -w 60 "$fd" || { exec {fd}>&-; log "timeout waiting for $HOSTS_LOCK"; return 1; }
  "$@" || rc=$?
  exec {fd}>&-
  return $rc
}
hosts_pin() { _hosts_locked _hosts_pin "$@"; }
_hosts_pin() {
  local n
  _hosts_purge_stale
  for n in "$@"; do
    grep -qE "^127\.0\.0\.1[[:space:]]+${n}[[:space:]]+$HOSTS_MARK\$" /etc/hosts ||
      printf '127.0.0.1 %s %s\n' "$n" "$HOSTS_MARK" >>/etc/hosts ||
      { not_ok "pin $n to 127.0.0.1 in /etc/hosts" "cannot write /etc/hosts (the suites need root)"; return 1; }
  done
}

# rewrite in place (keeps the inode: /etc/hosts may be a bind mount)
_hosts_filter() { # ERE of lines to drop
  local tmp
  grep -qE "$1" /etc/hosts || return 0
  tmp=$(mktemp) || return 1
  grep -vE "$1" /etc/hosts >"$tmp"
  cat "$tmp" >/etc/hosts
  rm -f "$tmp"
}
hosts_restore() {
  [[ -n $HOSTS_MARK ]] || return 0
  _hosts_locked _hosts_filter "$HOSTS_MARK\$"
  return 0
}
_hosts_purge_stale() { # lines left by suites that died without their trap
  local p
  for p in $(grep -oE '# portcullis-it pid=[0-9]+$' /etc/hosts | grep -oE '[0-9]+$' | sort -u); do
    [[ $p == "$$" ]] && continue
    kill -0 "$p" 2>/dev/null || _hosts_filter "# portcullis-it pid=$p\$"
  done
}

# ---------------------------------------------------------------- peers
# start_upstream NAME : docker-registry (distribution 2.8) on a free port (the same port again
# when NAME was started before: a restart keeps its data). Sets ADDR[NAME]. Access log in $T/NAME.log.
start_upstream() {
  local name=$1 port
  if [[ -n ${ADDR[$name]:-} ]]; then port=${ADDR[$name]##*:}; else port=$(free_port) || return 1; fi
  mkdir -p "$T/$name-data"
  cat >"$T/$name.yml" <<YML
version: 0.1
log:
  level: info
  fields: {service: $name}
storage:
  filesystem: {rootdirectory: $T/$name-data}
  delete: {enabled: true}
  cache: {blobdescriptor: inmemory}
  maintenance:
    uploadpurging: {enabled: false}
http:
  addr: 127.0.0.1:$port
  headers:
    X-Content-Type-Options: [nosniff]
YML
  ADDR[$name]=127.0.0.1:$port
  start_bg "$name" docker-registry serve "$T/$name.yml" || return 1
  wait_http "http://127.0.0.1:$port/v2/" 30 "$name"
}

# start_proxy NAME ARGS... : portcullis serve on a free port, data in $T/NAME-data
# (kept across restarts of the same NAME). Sets ADDR[NAME]; waits for GET /v2/.
# Without --admin-listen in ARGS the admin listener is off (never the fixed default port).
start_proxy() {
  local name=$1 port a=""; shift
  for a in "$@"; do [[ $a == --admin-listen || $a == --admin-listen=* ]] && break; done
  [[ $a == --admin-listen || $a == --admin-listen=* ]] || set -- "$@" --admin-listen off
  if [[ -n ${ADDR[$name]:-} ]]; then port=${ADDR[$name]##*:}; else port=$(free_port) || return 1; fi
  ADDR[$name]=127.0.0.1:$port
  mkdir -p "$T/$name-data"
  echo "+ $PORTCULLIS_BIN serve --listen 127.0.0.1:$port --data-dir $T/$name-data $*" >>"$T/$name.log"
  start_bg "$name" "$PORTCULLIS_BIN" serve --listen "127.0.0.1:$port" --data-dir "$T/$name-data" "$@" || return 1
  wait_http "http://127.0.0.1:$port/v2/" 30 "$name" || { tail -5 "$T/$name.log" >&2; return 1; }
}

# need_dockerd : dockerd and Debian's docker CLI ($DOCKER_CLI) are present (else a failure that
# ends the suite)
need_dockerd() {
  need dockerd
  [[ -x $DOCKER_CLI ]] || { not_ok "prerequisites present" "missing $DOCKER_CLI"; finish; }
}

# start_dockerd MIRROR-URL [INSECURE-HOSTPORT] : dockerd 20.10 with "registry-mirrors": [MIRROR-URL]
# (and "insecure-registries": [INSECURE-HOSTPORT] when given); data root, exec root and socket under
# $T, vfs storage, no iptables, no bridge; log in $T/dockerd.log. Docker Hub names are pinned to
# 127.0.0.1 first (port 443 closed), so a fallback past the mirror cannot succeed and no traffic
# leaves the machine. Sets DK, the docker CLI command for it (an array). Waits until
# `docker version` answers; fails when it does not (or dockerd exited).
start_dockerd() {
  local mirror=$1 insecure=${2:-} sock=$T/docker-exec/docker.sock insecure_line="" i
  hosts_pin registry-1.docker.io index.docker.io auth.docker.io
  mkdir -p "$T/docker" "$T/docker-exec"
  [[ -z $insecure ]] || insecure_line=$'\n'"  \"insecure-registries\": [\"$insecure\"],"
  cat >"$T/daemon.json" <<EOF
{
  "data-root": "$T/docker",
  "exec-root": "$T/docker-exec",
  "pidfile": "$T/docker-exec/dockerd.pid",
  "hosts": ["unix://$sock"],
  "storage-driver": "vfs",
  "iptables": false,
  "ip-masq": false,
  "bridge": "none",
  "registry-mirrors": ["$mirror"],$insecure_line
  "log-level": "info"
}
EOF
  start_bg dockerd dockerd --config-file "$T/daemon.json" || return 1
  DK=(timeout 600 "$DOCKER_CLI" -H "unix://$sock")
  wait_sock "$sock" 60 || return 1
  for i in $(seq 150); do
    "${DK[@]}" version >/dev/null 2>&1 && return 0
    is_running dockerd || return 1
    sleep 0.2
  done
  return 1
}

# upstream_blob_gets LOGFILE : blob GETs in a distribution access log
#   127.0.0.1 - - [22/Nov/2025:23:01:02 +0000] "GET /v2/lab/big/blobs/sha256:... HTTP/1.1" 200 ...
upstream_blob_gets() {
  grep -cE '^127\.0\.0\.1 - - \[[^]]*\] "GET /v2/[^ ]+/blobs/sha256:[0-9a-f]{64}[^ ]* HTTP/[0-9.]+"' "$1" || true
}
# upstream_requests LOGFILE : all requests in a distribution access log
upstream_requests() { grep -cE '^127\.0\.0\.1 - - \[[^]]*\] "[A-Z]+ ' "$1" || true; }

# ---------------------------------------------------------------- registry helpers
# registries_conf FILE : a private registries.conf with nothing but "no search registries"
plain_registries_conf() {
  [[ -f $T/registries-plain.conf ]] || printf 'unqualified-search-registries = []\nshort-name-mode = "disabled"\n' >"$T/registries-plain.conf"
  echo "$T/registries-plain.conf"
}
sk() { timeout 600 skopeo --registries-conf "$(plain_registries_conf)" "$@"; }

# manifest_digest HOSTPORT REPO REF [QUERY] : Docker-Content-Digest of a manifest GET with the
# full Accept list; fails unless 200, the header is present, and it equals sha256 of the body.
manifest_digest() {
  local hp=$1 repo=$2 ref=$3 q=${4:-} hdr body code d h
  hdr=$(mktemp -p "$T") body=$(mktemp -p "$T")
  code=$(curl -sS --max-time 60 -D "$hdr" -o "$body" -w '%{http_code}' -H "Accept: $ACCEPT_ALL" \
         "http://$hp/v2/$repo/manifests/$ref$q") || { rm -f "$hdr" "$body"; echo "curl failed" >&2; return 1; }
  h=$(awk 'tolower($1)=="docker-content-digest:"{print $2}' "$hdr" | tr -d '\r' | tail -1)
  d=sha256:$(sha256sum <"$body" | cut -d' ' -f1)
  rm -f "$hdr" "$body"
  [[ $code == 200 ]] || { echo "HTTP $code for $hp/$repo:$ref" >&2; return 1; }
  [[ -n $h ]] || { echo "no Docker-Content-Digest header for $hp/$repo:$ref" >&2; return 1; }
  [[ $h == "$d" ]] || { echo "header digest $h != body digest $d" >&2; return 1; }
  echo "$d"
}

# http_status METHOD URL [curl args...] : prints the status code ("000" on connection failure)
http_status() {
  local m=$1 u=$2; shift 2
  curl -s -o /dev/null --max-time 60 -X "$m" -w '%{http_code}' "$@" "$u"
}

# oci_status METHOD URL [curl args...] : prints "HTTP-STATUS OCI-CODE" (the first
# .errors[].code of the body, "-" when the body is not OCI error JSON; "000 -" on no answer),
# for exact checks such as check_eq DESC "503 UPSTREAM_UNAVAILABLE" "$(oci_status GET URL)"
oci_status() {
  local m=$1 u=$2 code ec b; shift 2
  b=$(mktemp -p "$T")
  code=$(curl -s -o "$b" --max-time 60 -X "$m" -w '%{http_code}' "$@" "$u")
  ec=$(jq -r '.errors[0].code // "-"' "$b" 2>/dev/null) || ec=-
  rm -f "$b"
  echo "${code:-000} ${ec:--}"
}

# sha_of FILE : sha256:<hex> of the file's bytes
sha_of() { echo "sha256:$(sha256sum <"$1" | cut -d' ' -f1)"; }

# curl_push_blob HOSTPORT REPO FILE : monolithic POST + PUT
curl_push_blob() {
  local d loc sep code
  d=$(sha_of "$3")
  loc=$(curl -sS --max-time 60 -X POST -D - -o /dev/null "http://$1/v2/$2/blobs/uploads/" |
        awk 'tolower($1)=="location:"{print $2}' | tr -d '\r')
  [[ -n $loc ]] || { echo "no Location" >&2; return 1; }
  [[ $loc == http* ]] || loc="http://$1$loc"
  sep='?'; [[ $loc == *\?* ]] && sep='&'
  code=$(curl -sS --max-time 60 -o /dev/null -w '%{http_code}' -X PUT -H 'Content-Type: application/octet-stream' \
         --data-binary @"$3" "$loc${sep}digest=$d")
  [[ $code == 201 ]] || { echo "PUT blob: HTTP $code" >&2; return 1; }
}
# put_manifest HOSTPORT REPO REF FILE MEDIATYPE : PUT a manifest, expect 201
put_manifest() {
  local code
  code=$(curl -sS --max-time 60 -o "$T/put.out" -w '%{http_code}' -X PUT -H "Content-Type: $5" \
         --data-binary @"$4" "http://$1/v2/$2/manifests/$3")
  [[ $code == 201 ]] || { echo "PUT manifest $2:$3: HTTP $code $(head -c 300 "$T/put.out")" >&2; return 1; }
}
# get_manifest HOSTPORT REPO REF OUT
get_manifest() { curl -fsS --max-time 60 -H "Accept: $ACCEPT_ALL" -o "$4" "http://$1/v2/$2/manifests/$3"; }

# push_random_image HOSTPORT REPO REF SIZE... : push an OCI image whose layers are random
# (incompressible) bytes of the given sizes (uncompressed tar media type), with a config naming
# them as diff_ids; sets LAYER_DIGESTS (array, in order) and IMAGE_DIGEST (the manifest's digest)
push_random_image() {
  local hp=$1 repo=$2 ref=$3 size f cfg man dids=() layers=(); shift 3
  LAYER_DIGESTS=() IMAGE_DIGEST=""
  f=$(mktemp -p "$T") || return 1
  for size in "$@"; do
    head -c "$size" /dev/urandom >"$f" && curl_push_blob "$hp" "$repo" "$f" || { rm -f "$f"; return 1; }
    LAYER_DIGESTS+=("$(sha_of "$f")")
    dids+=("\"${LAYER_DIGESTS[-1]}\"")
    layers+=("{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\",\"digest\":\"${LAYER_DIGESTS[-1]}\",\"size\":$size}")
  done
  rm -f "$f"
  cfg=$(mktemp -p "$T") man=$(mktemp -p "$T")
  printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[%s]},"config":{}}' \
    "$(IFS=,; echo "${dids[*]}")" >"$cfg"
  curl_push_blob "$hp" "$repo" "$cfg" || { rm -f "$cfg" "$man"; return 1; }
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%d},"layers":[%s]}' \
    "$(sha_of "$cfg")" "$(wc -c <"$cfg")" "$(IFS=,; echo "${layers[*]}")" >"$man"
  IMAGE_DIGEST=$(sha_of "$man")
  put_manifest "$hp" "$repo" "$ref" "$man" application/vnd.oci.image.manifest.v1+json
  local rc=$?
  rm -f "$cfg" "$man"
  return $rc
}

# ---------------------------------------------------------------- test images
# build_images : build the test images offline once, as OCI layouts under $IMG_CACHE
# (build_images.sh does the work; serialised with flock; re-used across suites and runs).
#   oci:$IMG_CACHE/oci:small   OCI manifest, 2 layers (busybox-static, text files), amd64
#   oci:$IMG_CACHE/oci:big     small + one 200 MiB incompressible deterministic layer
#   oci:$IMG_CACHE/multi:v1    OCI index linux/amd64 + linux/arm64 (buildah)
# Sets IMG_OCI, IMG_MULTI.
build_images() {
  IMG_OCI=$IMG_CACHE/oci
  IMG_MULTI=$IMG_CACHE/multi
  mkdir -p "$IMG_CACHE" || return 1
  [[ -f $IMG_CACHE/complete-v$IMG_CACHE_VERSION ]] && return 0
  log "building test images into $IMG_CACHE (once)"
  timeout 1200 flock -w 1200 "$IMG_CACHE/.lock" \
    bash "$IT_DIR/build_images.sh" "$IMG_CACHE" "$IMG_CACHE_VERSION" >"$T/build_images.log" 2>&1 ||
    { tail -5 "$T/build_images.log" >&2; return 1; }
}

# policy_decision LOGNAME IMAGE : the last "policy decision" JSON line the proxy started as
# LOGNAME logged for IMAGE (empty when none)
policy_decision() {
  grep -F '"msg":"policy decision"' "$T/$1.log" | jq -cR --arg i "$2" 'fromjson? | select(.image == $i)' | tail -1
}

# podman_via_proxy PROXY NAME : a podman with private storage and configuration in $T whose
# registries.conf mirrors the registry NAME at http://PROXY/NAME (NAME pinned to 127.0.0.1,
# port 443 closed, so nothing can bypass the mirror). Sets PM, the podman command line. The
# runroot is $T/r: podman refuses one longer than 50 characters.
podman_via_proxy() {
  local proxy=$1 name=$2
  hosts_pin "$name" || return 1
  printf '%s\n' 'unqualified-search-registries = []' 'short-name-mode = "disabled"' '' '[[registry]]' \
    "prefix = \"$name\"" "location = \"$name\"" '[[registry.mirror]]' "location = \"$proxy/$name\"" \
    'insecure = true' >"$T/registries-mirror.conf"
  export CONTAINERS_REGISTRIES_CONF=$T/registries-mirror.conf CONTAINERS_STORAGE_CONF=$T/storage.conf
  printf '[storage]\ndriver = "vfs"\nrunroot = "%s"\ngraphroot = "%s"\n' "$T/r" "$T/podman-root" >"$CONTAINERS_STORAGE_CONF"
  export XDG_RUNTIME_DIR=$T/xdg HOME=$T/home
  mkdir -p "$XDG_RUNTIME_DIR" "$HOME"
  chmod 700 "$XDG_RUNTIME_DIR"
  PM=(timeout 600 podman --root "$T/podman-root" --runroot "$T/r" --storage-driver vfs
      --cgroup-manager cgroupfs --events-backend none --tmpdir "$T/podman-tmp")
}

# push_images HOSTPORT [PREFIX] : push the test images into a registry (plain http)
#   PREFIX/lab/small:v1 (OCI), PREFIX/lab/small:v2s2 (Docker v2s2), PREFIX/lab/big:v1 (OCI),
#   PREFIX/lab/multi:v1 (OCI index), PREFIX/library/hello:latest (v2s2)
push_images() {
  local hp=$1 p=${2:+$2/}
  build_images || { echo "build_images failed" >&2; return 1; }
  sk copy -q --dest-tls-verify=false "oci:$IMG_OCI:small" "docker://$hp/${p}lab/small:v1" &&
  sk copy -q --dest-tls-verify=false --format v2s2 "oci:$IMG_OCI:small" "docker://$hp/${p}lab/small:v2s2" &&
  sk copy -q --dest-tls-verify=false "oci:$IMG_OCI:big" "docker://$hp/${p}lab/big:v1" &&
  sk copy -q --all --dest-tls-verify=false "oci:$IMG_MULTI:v1" "docker://$hp/${p}lab/multi:v1" &&
  sk copy -q --dest-tls-verify=false --format v2s2 "oci:$IMG_OCI:small" "docker://$hp/${p}library/hello:latest"
}

# blob digests of an image in a registry: big layer of lab/big:v1 etc.
# image_layers HOSTPORT REPO REF : prints the layer digests of a (single-platform) manifest
image_layers() {
  curl -fsS --max-time 60 -H "Accept: $ACCEPT_ALL" "http://$1/v2/$2/manifests/$3" | jq -r '.layers[].digest'
}
# largest_layer HOSTPORT REPO REF : digest of the largest layer
largest_layer() {
  curl -fsS --max-time 60 -H "Accept: $ACCEPT_ALL" "http://$1/v2/$2/manifests/$3" |
    jq -r '.layers | max_by(.size) | .digest'
}

# ---------------------------------------------------------------- signing and trust policies
SPY="$IT_DIR/signer_interop.py"   # independent signer (python3-cryptography): keygen, payload, sign, sigimage

# signing_env PASSPHRASE : PASSPHRASE protects the keys `portcullis key generate` makes
# (PORTCULLIS_PASSWORD); no COSIGN_PASSWORD; DOCKER_CONFIG is a private folder with an empty
# config.json (podman stats it), so the invoking user's registry credentials are never used
signing_env() {
  unset COSIGN_PASSWORD DOCKER_CONFIG
  export PORTCULLIS_PASSWORD=$1
  export DOCKER_CONFIG="$T/no-docker-config"
  mkdir -p "$DOCKER_CONFIG" && printf '{"auths":{}}\n' >"$DOCKER_CONFIG/config.json"
}

pc() { "$PORTCULLIS_BIN" "$@"; }

# gen_keys NAME... : `portcullis key generate` $T/NAME.key + $T/NAME.pub, one check per key; the
# public keys are copied to $T/pol/keys/ (policies in $T/pol name them keys/NAME.pub). Fails when
# any key could not be made.
gen_keys() {
  local k rc=0
  mkdir -p "$T/pol/keys"
  for k in "$@"; do
    check "key generate $k" pc key generate --output-prefix "$T/$k" && cp "$T/$k.pub" "$T/pol/keys/" || rc=1
  done
  return $rc
}

# cosign_referrer DIR IDENTITY DIGEST SIZE : python (signer_interop.py) signs DIGEST as IDENTITY
# with DIR/py.pem and builds what a cosign referrer of the image DIGEST (a manifest of SIZE bytes)
# needs: DIR/ref-payload.json and DIR/empty.json (its blobs), DIR/referrer.json (artifactType
# application/vnd.dev.cosign.artifact.sig.v1+json, subject = the image, the payload as its one
# layer with the signature annotation) and DIR/fallback-index.json (an OCI index listing the
# referrer, for the fallback tag sha256-<hex>). Sets RD, the referrer's digest.
cosign_referrer() {
  local dir=$1 sig
  "$PY" "$SPY" payload "$2" "$3" >"$dir/ref-payload.json"
  sig=$("$PY" "$SPY" sign "$dir/py.pem" "$dir/ref-payload.json")
  printf '{}' >"$dir/empty.json"
  jq -cn --arg at "application/vnd.dev.cosign.artifact.sig.v1+json" \
    --arg cd "$(sha_of "$dir/empty.json")" \
    --arg pd "$(sha_of "$dir/ref-payload.json")" --argjson ps "$(wc -c <"$dir/ref-payload.json")" \
    --arg sig "$sig" --arg subj "$3" --argjson ss "$4" \
    '{schemaVersion:2, mediaType:"application/vnd.oci.image.manifest.v1+json", artifactType:$at,
      config:{mediaType:"application/vnd.oci.empty.v1+json", digest:$cd, size:2},
      layers:[{mediaType:"application/vnd.dev.cosign.simplesigning.v1+json", digest:$pd, size:$ps,
               annotations:{"dev.cosignproject.cosign/signature":$sig}}],
      subject:{mediaType:"application/vnd.oci.image.manifest.v1+json", digest:$subj, size:$ss}}' \
    | tr -d '\n' >"$dir/referrer.json"
  RD=$(sha_of "$dir/referrer.json")
  jq -cn --arg at "application/vnd.dev.cosign.artifact.sig.v1+json" --arg rd "$RD" \
    --argjson rs "$(wc -c <"$dir/referrer.json")" \
    '{schemaVersion:2, mediaType:"application/vnd.oci.image.index.v1+json",
      manifests:[{mediaType:"application/vnd.oci.image.manifest.v1+json", digest:$rd, size:$rs, artifactType:$at}]}' \
    | tr -d '\n' >"$dir/fallback-index.json"
}

# ---------------------------------------------------------------- wrong bytes never complete
# wrong_bytes_cut NAME URL DIGEST LIAR-STATS-URL [CLIENTS=4] [GRACE=5] : CLIENTS concurrent
# GETs of URL (a blob that the upstream behind the proxy sends wrong or short, via
# lying_upstream.py). Passes only when EVERY client's transfer was CUT: curl exit 18, 56 or 92,
# or fewer bytes than the announced Content-Length (a complete body, a clean error answer
# without a body, a timeout (curl 28) or a body matching DIGEST through a liar all fail),
# and PROMPTLY: each client ended at most GRACE seconds after the liar's last blob body
# ended (its /_stats last_blob_body_end), far below the clients' own --max-time (120 s).
# Prints one line per client (the reason on failure). Files in $T/NAME.N.*.
wrong_bytes_cut() {
  local name=$1 url=$2 dg=$3 stats=$4 n=${5:-4} grace=${6:-5} i pids=() fail=0 up_end
  local rc meta code size clen sum end late cut
  for ((i = 1; i <= n; i++)); do
    ( curl -sS --max-time 120 -D "$T/$name.$i.hdr" -o "$T/$name.$i.body" \
           -w '%{http_code} %{size_download}' "$url" >"$T/$name.$i.meta" 2>"$T/$name.$i.err"
      echo $? >"$T/$name.$i.rc"
      date +%s.%N >"$T/$name.$i.end" ) &
    pids+=($!)
  done
  for i in "${pids[@]}"; do wait "$i"; done
  up_end=$(curl -fsS --max-time 10 "$stats" | jq -r '.last_blob_body_end') || up_end=""
  [[ $up_end =~ ^[0-9]+(\.[0-9]+)?$ && $up_end != 0 ]] ||
    { echo "no last_blob_body_end from the liar at $stats ('$up_end')"; return 1; }
  for ((i = 1; i <= n; i++)); do
    rc=$(cat "$T/$name.$i.rc") meta=$(cat "$T/$name.$i.meta") end=$(cat "$T/$name.$i.end")
    code=${meta% *} size=${meta#* }
    clen=$(awk 'tolower($1)=="content-length:"{print $2}' "$T/$name.$i.hdr" 2>/dev/null | tr -d '\r' | tail -1)
    sum=none; [[ -f $T/$name.$i.body ]] && sum=sha256:$(sha256sum <"$T/$name.$i.body" | cut -d' ' -f1)
    late=$(awk -v a="$end" -v b="$up_end" 'BEGIN { printf "%.2f", a - b }')
    rm -f "$T/$name.$i.body"
    cut=0
    [[ $rc == 18 || $rc == 56 || $rc == 92 ]] && cut=1
    [[ -n $clen && $clen =~ ^[0-9]+$ && $size =~ ^[0-9]+$ ]] && ((size < clen)) && cut=1
    local what="client $i: curl exit $rc, HTTP $code, $size of ${clen:-?} bytes, ended ${late}s after the upstream's last byte"
    if [[ $rc == 28 ]]; then
      echo "$what: FAIL timed out (the client's own --max-time, not a cut)"; fail=1
    elif [[ $sum == "$dg" ]]; then
      echo "$what: FAIL the body matches the digest (the liar did not lie?)"; fail=1
    elif ((cut == 0)); then
      echo "$what: FAIL the transfer was not cut"; fail=1
    elif awk -v l="$late" -v g="$grace" 'BEGIN { exit !(l > g) }'; then
      echo "$what: FAIL cut more than ${grace}s after the upstream's last byte"; fail=1
    else
      echo "$what: cut $(head -c 100 "$T/$name.$i.err" | tr '\n' ' ')"
    fi
  done
  return $fail
}
