#!/usr/bin/env bash
# The admin API of `portcullis serve` (--admin-listen, a separate listener) and `portcullis admin`:
#   - auth: every endpoint but /healthz and /readyz answers 401 (OCI error JSON) without the
#     token or with a wrong one, 200 with it; the token never shows in logs or CLI output;
#   - /metrics moves with real pulls: blob misses then hits, bytes served, upstream bytes;
#   - cache stats / ls show a pulled image; purge REPO drops it (a pull goes upstream again),
#     purge DIGEST, malformed / unknown targets, gc;
#   - prefetch IMAGE (manifest, index with children, default-upstream names) then a pull sends
#     no blob GET upstream;
#   - fsck finds a blob corrupted on disk (bytes flipped in its layer file), exit 1, drops
#     it, and the next GET fetches the right bytes again;
#   - kill -9 in the middle of a cold 200 MiB fetch (throttled upstream): after a restart the
#     half-written blob is cleaned (log line, its bytes gone from the disk) and the blob comes
#     back whole;
#   - --cache-max-bytes: the data dir stays near the bound while 200 MiB + small images are
#     pulled again and again, evictions are counted, and pulls keep working.
source "$(dirname "$0")/lib.sh"
suite_init admin

BIN=$PORTCULLIS_BIN
need openssl du dd stat

# ---------------------------------------------------------------- helpers
# api NAME METHOD PATH [curl args...] : request to the admin listener of proxy NAME with the
# right token; body in $T/api.body, status printed.
# POSTs carry an empty body with Content-Length: 0 (as the CLI sends them; a POST without any
# Content-Length is checked on its own below).
api() {
  local name=$1 m=$2 p=$3 body=(); shift 3
  [[ $m == POST ]] && body=(--data-binary '')
  curl -sS --max-time 900 -X "$m" "${body[@]}" -o "$T/api.body" -w '%{http_code}' \
    -H "Authorization: Bearer $(head -1 "${TOKFILE[$name]}")" "$@" "http://${AP[$name]}$p" 2>"$T/api.err" || true
}
# api_noauth NAME METHOD PATH [curl args...] : same without the token; body in $T/api.body
api_noauth() {
  local name=$1 m=$2 p=$3 body=(); shift 3
  [[ $m == POST ]] && body=(--data-binary '')
  curl -sS --max-time 120 -X "$m" "${body[@]}" -o "$T/api.body" -w '%{http_code}' "$@" "http://${AP[$name]}$p" 2>"$T/api.err" || true
}
# adm NAME ARGS... : portcullis admin against proxy NAME (stdout, stderr to the caller)
adm() {
  local name=$1; shift
  "$BIN" admin --server "http://${AP[$name]}" --token-file "${TOKFILE[$name]}" "$@"
}
# metrics NAME FILE : scrape /metrics into FILE
metrics() { api "$1" GET /metrics >"$T/metrics.code"; cp "$T/api.body" "$2"; [[ $(cat "$T/metrics.code") == 200 ]]; }
# msum FILE NAME [LABEL-SUBSTRING...] : sum of the series NAME{...} that contain every substring
msum() {
  local f=$1 n=$2; shift 2
  awk -v n="$n" -v pats="$*" '
    BEGIN { np = split(pats, p, " ") }
    /^#/ || NF < 2 { next }
    { name = $1; sub(/\{.*/, "", name); if (name != n) next
      for (i = 1; i <= np; i++) if (index($0, p[i]) == 0) next
      s += $NF }
    END { printf "%.0f\n", s + 0 }' "$f"
}
# jqt [JQ ARGS...] FILTER [FILE] : true when the input (FILE, else stdin) is non-empty JSON and
# FILTER yields true (jq -e alone succeeds on empty input).
jqt() {
  local args=("$@") in
  if [[ ${#args[@]} -ge 2 && -f ${args[-1]} ]]; then in=$(cat "${args[-1]}"); unset 'args[-1]'; else in=$(cat); fi
  [[ -n ${in//[[:space:]]/} ]] || { echo "empty input"; return 1; }
  jq -e "${args[@]}" <<<"$in"
}
export -f jqt
# is_oci_error FILE [CODE] : FILE is {"errors":[{"code":CODE (any code without CODE),...}]}
is_oci_error() {
  jqt --arg c "${2:-}" '.errors | type == "array" and length >= 1 and (.[0].code | type) == "string" and ($c == "" or .[0].code == $c)' "$1" >/dev/null 2>&1
}
export -f is_oci_error
# gt A B : A > B (integers)
gt() { (($1 > $2)); }
# blob_sha HOSTPORT REPO DIGEST : sha256 of a full GET of a blob ("sha256:<hex>")
blob_sha() {
  local s
  s=$(curl -sS --max-time 600 -f "http://$1/v2/$2/blobs/$3" | sha256sum | cut -d' ' -f1) && echo "sha256:$s"
}
# image_blobs HOSTPORT REPO REF : config + layer digests of a single-platform manifest
image_blobs() {
  curl -fsS --max-time 60 -H "Accept: $ACCEPT_ALL" "http://$1/v2/$2/manifests/$3" | jq -r '.config.digest, .layers[].digest'
}
# sizes_sum HOSTPORT REPO REF : config + layer sizes
sizes_sum() {
  curl -fsS --max-time 60 -H "Accept: $ACCEPT_ALL" "http://$1/v2/$2/manifests/$3" | jq '[.config.size, .layers[].size] | add'
}
# start_admin_proxy NAME ARGS... : start_proxy with an admin listener on a free port (kept
# across restarts of NAME) and the token file in TOKFILE[NAME] (unless ARGS has its own).
declare -A AP=() TOKFILE=()
start_admin_proxy() {
  local name=$1; shift
  [[ -n ${AP[$name]:-} ]] || AP[$name]=127.0.0.1:$(free_port)
  start_proxy "$name" --admin-listen "${AP[$name]}" "$@" || return 1
  wait_http "http://${AP[$name]}/healthz" 30 "$name"
}
# kill9 NAME : SIGKILL the proxy we started as NAME
kill9() {
  local pid=${PIDS[$1]:-}
  [[ -n $pid ]] || return 0
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  PIDS[$1]=""
}
# du_b DIR : bytes used under DIR
du_b() { du -sb "$1" | cut -f1; }
# du_breakdown DIR : bytes per kind of RocksDB file, for logs
du_breakdown() {
  find "$1" -type f -printf '%s %f\n' | awk '
    { k = "other"; if (length($2) == 64 && $2 ~ /^[0-9a-f]+$/) k = "layer"; else if ($2 ~ /\.blob$/) k = "blob"; else if ($2 ~ /\.sst$/) k = "sst"; else if ($2 ~ /^[0-9]+\.log$/) k = "wal"
      s[k] += $1 }
    END { for (k in s) printf "%s=%.1fMiB ", k, s[k] / 1048576 }'
}

MiB=1048576

# ---------------------------------------------------------------- peers
start_upstream upstream || { not_ok "upstream registry starts" "see $T/upstream.log"; finish; }
UP=${ADDR[upstream]}
ULOG=$T/upstream.log
check "test images pushed into the upstream" push_images "$UP" || finish

# (the help text in a variable first: grep -q in a pipe under pipefail fails when it
# exits before the writer has finished and the writer gets SIGPIPE)
serve_help=$("$BIN" serve --help 2>&1)
if ! grep -q -- '--admin-listen' <<<"$serve_help"; then
  not_ok "serve knows --admin-listen, --admin-token-file, --cache-max-bytes" "not in 'portcullis serve --help'"
fi

TOKEN=$(openssl rand -hex 32)
printf '%s\n' "$TOKEN" >"$T/token"
chmod 600 "$T/token"
printf 'not-the-token-%s\n' "$(openssl rand -hex 8)" >"$T/wrong-token"
TOKFILE[proxy]=$T/token
# upstream.test is the default upstream; docker.io (the same registry) is there for the
# Docker Hub naming of prefetch ("docker.io/hello" = docker.io/library/hello:latest)
PROXY_ARGS=(--upstream "upstream.test=http://$UP" --upstream "docker.io=http://$UP" --tag-ttl 600 --admin-token-file "$T/token")
start_admin_proxy proxy "${PROXY_ARGS[@]}" ||
  { not_ok "proxy starts with --admin-listen and --admin-token-file" "$(tail -3 "$T/proxy.log")"; finish; }
ok "proxy starts with --admin-listen and --admin-token-file; /healthz answers"
P=${ADDR[proxy]}
A=${AP[proxy]}

SMALLD=$(manifest_digest "$UP" lab/small v1) || { not_ok "upstream has lab/small:v1" "no digest"; finish; }
BIGD=$(manifest_digest "$UP" lab/big v1)
MULTID=$(manifest_digest "$UP" lab/multi v1)
BIGBLOB=$(largest_layer "$UP" lab/big v1)
mapfile -t SMALL_BLOBS < <(image_blobs "$UP" lab/small v1)
SMALL_BYTES=$(sizes_sum "$UP" lab/small v1)
log "lab/small:v1 $SMALLD: ${#SMALL_BLOBS[@]} blobs, $SMALL_BYTES bytes; big blob $BIGBLOB"

# ---------------------------------------------------------------- health, readiness, auth
code=$(api_noauth proxy GET /healthz)
check_eq "GET /healthz without a token: 200 \"ok\"" "200 ok" "$code $(cat "$T/api.body")"
code=$(api_noauth proxy GET /readyz)
check_eq "GET /readyz without a token: 200 ready, rocksdb ok" "200 true ok" \
  "$code $(jq -r '"\(.ready) \(.checks.rocksdb)"' "$T/api.body" 2>/dev/null)"

ENDPOINTS=(
  "GET /metrics"
  "GET /api/v1/cache/stats"
  "GET /api/v1/cache/ls"
  "GET /api/v1/cache/ls?repo=upstream.test/lab/small"
  "POST /api/v1/cache/purge?target=upstream.test/lab/nothing-here"
  "POST /api/v1/cache/gc"
  "POST /api/v1/cache/fsck"
  "POST /api/v1/prefetch?image=upstream.test/lab/small:v1"
)
for ep in "${ENDPOINTS[@]}"; do
  m=${ep%% *} p=${ep#* }
  code=$(api_noauth proxy "$m" "$p")
  if [[ $code == 401 ]] && is_oci_error "$T/api.body" UNAUTHORIZED; then ok "$ep without a token: 401 UNAUTHORIZED"
  else not_ok "$ep without a token: 401 UNAUTHORIZED" "HTTP $code: $(head -c 200 "$T/api.body")"; fi
  code=$(api_noauth proxy "$m" "$p" -H "Authorization: Bearer $(cat "$T/wrong-token")")
  if [[ $code == 401 ]] && is_oci_error "$T/api.body" UNAUTHORIZED; then ok "$ep with a wrong token: 401 UNAUTHORIZED"
  else not_ok "$ep with a wrong token: 401 UNAUTHORIZED" "HTTP $code: $(head -c 200 "$T/api.body")"; fi
done
# the token in another scheme, cut short, with a suffix or without a scheme is not the token
declare -A BADAUTH=(
  [basic]="Basic $(printf 'admin:%s' "$TOKEN" | base64 -w0)"
  [prefix]="Bearer ${TOKEN:0:32}"
  [suffix]="Bearer ${TOKEN}x"
  [no-scheme]="$TOKEN"
  [empty-bearer]="Bearer "
)
for k in basic prefix suffix no-scheme empty-bearer; do
  code=$(api_noauth proxy GET /api/v1/cache/stats -H "Authorization: ${BADAUTH[$k]}")
  check_eq "GET /api/v1/cache/stats with the token given wrongly ($k): 401" 401 "$code"
done
# with the right token: 200 and JSON (purge of an unknown repository: 404, not 401)
for ep in "GET /metrics" "GET /api/v1/cache/stats" "GET /api/v1/cache/ls" "POST /api/v1/cache/gc" "POST /api/v1/cache/fsck"; do
  m=${ep%% *} p=${ep#* }
  code=$(api proxy "$m" "$p")
  check_eq "$ep with the token: 200" 200 "$code"
done
code=$(api proxy POST "/api/v1/cache/purge?target=upstream.test/lab/nothing-here")
if [[ $code == 404 ]] && jqt '.errors[0].code' "$T/api.body" >/dev/null 2>&1; then
  ok "POST purge of a repository with nothing cached, with the token: 404 OCI error"
else not_ok "POST purge of a repository with nothing cached, with the token: 404 OCI error" "HTTP $code: $(head -c 200 "$T/api.body")"; fi
for tgt in "sha256:zz" "sha256:0123" "" "upstream.test/../../etc" "upstream.test/Lab/UPPER"; do
  code=$(api proxy POST "/api/v1/cache/purge?target=$tgt")
  if [[ $code == 400 ]] && jqt '.errors[0].code' "$T/api.body" >/dev/null 2>&1; then
    ok "POST purge?target='$tgt' (malformed): 400 OCI error"
  else not_ok "POST purge?target='$tgt' (malformed): 400 OCI error" "HTTP $code: $(head -c 200 "$T/api.body")"; fi
done
code=$(api proxy POST "/api/v1/cache/purge")
check_true "POST purge without target: 400 OCI error" "HTTP $code: $(head -c 200 "$T/api.body")" \
  bash -c "[[ $code == 400 ]] && is_oci_error '$T/api.body'"
# a POST without any Content-Length (plain "curl -X POST") has an empty body (RFC 9112 6.3)
code=$(curl -sS --max-time 120 -X POST -o "$T/api.body" -w '%{http_code}' -H "Authorization: Bearer $TOKEN" \
  "http://$A/api/v1/cache/gc")
check_true "POST /api/v1/cache/gc without Content-Length (curl -X POST): 200 JSON" "HTTP $code: '$(head -c 200 "$T/api.body")'" \
  bash -c "[[ $code == 200 ]] && jqt '.blobs | type == \"number\"' '$T/api.body'"
# the wrong method on a known path: an OCI error JSON (405 or 404), not a bare status
for ep in "GET /api/v1/cache/gc" "POST /api/v1/cache/stats" "DELETE /api/v1/cache/purge?target=upstream.test/lab/small"; do
  code=$(api proxy "${ep%% *}" "${ep#* }")
  check_true "$ep (wrong method): 404/405 with an OCI error JSON body" "HTTP $code: '$(head -c 200 "$T/api.body")'" \
    bash -c "[[ $code == 405 || $code == 404 ]] && is_oci_error '$T/api.body'"
done
code=$(api proxy GET /api/v1/no-such-endpoint)
check_true "an unknown admin path with the token: 404 OCI error" "HTTP $code: '$(head -c 200 "$T/api.body")'" \
  bash -c "[[ $code == 404 ]] && is_oci_error '$T/api.body'"
check_eq "the registry listener does not serve the admin API (404 NOT_FOUND, with the token)" "404 NOT_FOUND" \
  "$(oci_status GET "http://$P/api/v1/cache/stats" -H "Authorization: Bearer $TOKEN")"
check_eq "the admin listener does not serve the registry API (404 NOT_FOUND, with the token)" "404 NOT_FOUND" \
  "$(oci_status GET "http://$A/v2/" -H "Authorization: Bearer $TOKEN")"
check_eq "... and without the token it is 401 UNAUTHORIZED" "401 UNAUTHORIZED" "$(oci_status GET "http://$A/v2/")"

# the CLI: health needs no token; a wrong token is explained; nothing prints the token
out=$("$BIN" admin --server "http://$A" --token-file /nonexistent/token health 2>&1)
check_eq "admin health (no token file): exit 0" 0 $?
check_true "admin health prints healthz ok and readyz ready" "$out" \
  bash -c 'grep -qE "^healthz[[:space:]]+ok\b" <<<"$1" && grep -qE "^readyz[[:space:]]+ready\b" <<<"$1"' _ "$out"
out=$("$BIN" admin --server "http://$A" --token-file "$T/wrong-token" cache stats 2>&1)
rc=$?
check_eq "admin cache stats with a wrong token: exit 2" 2 "$rc"
check_true "... says the admin API refused the token (401)" "$out" grep -q 'refused the token (401)' <<<"$out"
check_true "... and does not print the token it sent" "token in the output" \
  bash -c "! grep -qF '$(head -1 "$T/wrong-token")' <<<\"\$0\"" "$out"
out=$("$BIN" admin --server "http://127.0.0.1:$(free_port)" --token-file "$T/token" cache stats 2>&1)
check_eq "admin cache stats against a closed port: exit 2" 2 $?
out=$(PORTCULLIS_ADMIN_TOKEN_FILE=$T/token "$BIN" admin --server "http://$A" --json cache stats 2>&1)
check_true "admin --json cache stats with the token from \$PORTCULLIS_ADMIN_TOKEN_FILE" "$out" \
  jqt '.blobs | type == "number"' <<<"$out"
out=$("$BIN" admin cache frobnicate 2>&1)
check_eq "admin cache frobnicate: exit 2 (usage)" 2 $?
for h in "" "cache" "cache stats" "cache ls" "cache purge" "cache gc" "cache fsck" "prefetch" "health" "metrics"; do
  # shellcheck disable=SC2086
  "$BIN" admin $h --help >"$T/help.out" 2>&1
  rc=$?
  check_true "admin $h --help: exit 0 and a Usage line" "exit $rc: $(head -1 "$T/help.out")" \
    bash -c "[[ $rc == 0 ]] && grep -q '^Usage: portcullis admin' '$T/help.out'"
done

# ---------------------------------------------------------------- metrics move with real pulls
MF=(
  portcullis_http_requests_total portcullis_request_duration_seconds portcullis_cache_requests_total
  portcullis_served_bytes_total portcullis_upstream_bytes_total portcullis_inflight_fetches
  portcullis_coalesced_waiters_total portcullis_upstream_blob_fetches_total portcullis_cache_bytes
  portcullis_cache_entries portcullis_evictions_total
)
metrics proxy "$T/m0.txt" || not_ok "scrape /metrics (before)" "HTTP $(cat "$T/metrics.code")"
missing=()
for f in "${MF[@]}"; do grep -q "^# TYPE $f " "$T/m0.txt" || missing+=("$f"); done
check_eq "/metrics has every documented family (# TYPE lines)" "" "${missing[*]}"
grep -q '^# TYPE portcullis_request_duration_seconds histogram' "$T/m0.txt"
check_eq "portcullis_request_duration_seconds is a histogram" 0 $?
out=$(adm proxy metrics 2>&1)
check_true "admin metrics prints the Prometheus text" "$(head -c 200 <<<"$out")" grep -q '^# TYPE portcullis_' <<<"$out"

b0=$(upstream_blob_gets "$ULOG")
check "cold skopeo pull of lab/small:v1 through the proxy" \
  sk copy -q --src-tls-verify=false "docker://$P/lab/small:v1" "oci:$T/pull-small1:x"
b1=$(upstream_blob_gets "$ULOG")
metrics proxy "$T/m1.txt"
check "warm skopeo pull of lab/small:v1 through the proxy" \
  sk copy -q --src-tls-verify=false "docker://$P/lab/small:v1" "oci:$T/pull-small2:x"
b2=$(upstream_blob_gets "$ULOG")
metrics proxy "$T/m2.txt"
log "upstream blob GETs: cold pull $((b1 - b0)), warm pull $((b2 - b1))"
nb=${#SMALL_BLOBS[@]}
miss0=$(msum "$T/m0.txt" portcullis_cache_requests_total 'kind="blob"' 'result="miss"')
miss1=$(msum "$T/m1.txt" portcullis_cache_requests_total 'kind="blob"' 'result="miss"')
miss2=$(msum "$T/m2.txt" portcullis_cache_requests_total 'kind="blob"' 'result="miss"')
hit0=$(msum "$T/m0.txt" portcullis_cache_requests_total 'kind="blob"' 'result="hit"')
hit1=$(msum "$T/m1.txt" portcullis_cache_requests_total 'kind="blob"' 'result="hit"')
hit2=$(msum "$T/m2.txt" portcullis_cache_requests_total 'kind="blob"' 'result="hit"')
check_true "cold pull: blob misses grew by >= $nb" "misses $miss0 -> $miss1" test $((miss1 - miss0)) -ge "$nb"
check_eq "cold pull: no blob hits" "$hit0" "$hit1"
check_eq "warm pull: no new blob misses" "$miss1" "$miss2"
check_true "warm pull: blob hits grew by >= $nb" "hits $hit1 -> $hit2" test $((hit2 - hit1)) -ge "$nb"
mmiss1=$(msum "$T/m1.txt" portcullis_cache_requests_total 'kind="manifest"' 'result="miss"')
mmiss0=$(msum "$T/m0.txt" portcullis_cache_requests_total 'kind="manifest"' 'result="miss"')
check_true "cold pull: a manifest miss counted" "manifest misses $mmiss0 -> $mmiss1" gt "$mmiss1" "$mmiss0"
up0=$(msum "$T/m0.txt" portcullis_upstream_bytes_total) up1=$(msum "$T/m1.txt" portcullis_upstream_bytes_total)
up2=$(msum "$T/m2.txt" portcullis_upstream_bytes_total)
check_true "cold pull: upstream bytes grew by >= the image's blob bytes ($SMALL_BYTES)" "$up0 -> $up1" \
  test $((up1 - up0)) -ge "$SMALL_BYTES"
check_true "warm pull: upstream bytes grew by less than the blob bytes (manifest checks at most)" "$up1 -> $up2" \
  test $((up2 - up1)) -lt "$SMALL_BYTES"
sv0=$(msum "$T/m0.txt" portcullis_served_bytes_total) sv1=$(msum "$T/m1.txt" portcullis_served_bytes_total)
sv2=$(msum "$T/m2.txt" portcullis_served_bytes_total)
check_true "cold pull: served bytes grew by >= $SMALL_BYTES" "$sv0 -> $sv1" test $((sv1 - sv0)) -ge "$SMALL_BYTES"
check_true "warm pull: served bytes grew by >= $SMALL_BYTES" "$sv1 -> $sv2" test $((sv2 - sv1)) -ge "$SMALL_BYTES"
uf0=$(msum "$T/m0.txt" portcullis_upstream_blob_fetches_total) uf1=$(msum "$T/m1.txt" portcullis_upstream_blob_fetches_total)
uf2=$(msum "$T/m2.txt" portcullis_upstream_blob_fetches_total)
check_eq "upstream blob fetches: cold pull counted as many as upstream blob GETs, warm pull none" \
  "$((b1 - b0)) 0" "$((uf1 - uf0)) $((uf2 - uf1))"
r0=$(msum "$T/m0.txt" portcullis_http_requests_total) r2=$(msum "$T/m2.txt" portcullis_http_requests_total)
check_true "http requests counted (grew by >= 2 x $nb)" "$r0 -> $r2" test $((r2 - r0)) -ge $((2 * nb))
hc0=$(msum "$T/m0.txt" portcullis_request_duration_seconds_count) hc2=$(msum "$T/m2.txt" portcullis_request_duration_seconds_count)
check_true "request duration histogram counted the requests" "_count $hc0 -> $hc2" test $((hc2 - hc0)) -ge $((2 * nb))
check_true "portcullis_http_requests_total has route/method/status labels" \
  "$(grep -m3 '^portcullis_http_requests_total' "$T/m2.txt")" \
  bash -c 'grep "^portcullis_http_requests_total{" "$1" |
    grep "route=\"[^\"]\+\"" | grep "method=\"GET\"" | grep -q "status=\"200\""' _ "$T/m2.txt"
check_eq "nothing in flight after the pulls" 0 "$(msum "$T/m2.txt" portcullis_inflight_fetches)"

# ---------------------------------------------------------------- stats and ls
code=$(api proxy GET /api/v1/cache/stats)
cp "$T/api.body" "$T/stats1.json"
check_true "stats after the pull: >= $nb blobs, >= $SMALL_BYTES bytes, >= 1 manifest, max_bytes 0" \
  "$(cat "$T/stats1.json")" jqt --argjson n "$nb" --argjson b "$SMALL_BYTES" \
  '.blobs >= $n and .blob_bytes >= $b and .manifests >= 1 and .max_bytes == 0 and .inflight_fetches == 0 and (.evictions|type) == "number" and (.evicted_bytes|type) == "number"' \
  "$T/stats1.json"
metrics proxy "$T/m3.txt"
check_eq "portcullis_cache_bytes equals stats blob_bytes" "$(jq .blob_bytes "$T/stats1.json")" \
  "$(msum "$T/m3.txt" portcullis_cache_bytes)"
check_eq "portcullis_cache_entries{kind=\"blob\"} equals stats blobs" "$(jq .blobs "$T/stats1.json")" \
  "$(msum "$T/m3.txt" portcullis_cache_entries 'kind="blob"')"
out=$(adm proxy cache stats 2>&1)
check_true "admin cache stats (table): exit 0, shows blobs and a human size" "$out" \
  bash -c "grep -q '^blobs  *$(jq .blobs "$T/stats1.json")\$' <<<\"\$0\" && grep -qE '[0-9.]+ (B|KiB|MiB|GiB)' <<<\"\$0\"" "$out"
adm proxy --json cache ls >"$T/ls1.json" 2>"$T/ls1.err"
check_eq "admin --json cache ls: exit 0" 0 $?
missing=()
for d in "${SMALL_BLOBS[@]}"; do
  jqt --arg d "$d" '.blobs[] | select(.digest == $d) | select(.repos | index("upstream.test/lab/small")) | select(.size > 0 and .last_access > 1600000000)' \
    "$T/ls1.json" >/dev/null 2>&1 || missing+=("$d")
done
check_eq "cache ls lists every blob of lab/small:v1 with size, last_access and repo upstream.test/lab/small" "" "${missing[*]}"
check_true "cache ls lists the manifest with its tag upstream.test/lab/small:v1" "$(head -c 300 "$T/ls1.json")" \
  jqt --arg d "$SMALLD" '.manifests[] | select(.digest == $d) | select(.tags | index("upstream.test/lab/small:v1")) | select(.media_type | length > 0)' "$T/ls1.json"
out=$(adm proxy cache ls upstream.test/lab/small 2>&1)
rc=$?
missing=()
for d in "${SMALL_BLOBS[@]}" "$SMALLD"; do grep -q "$d" <<<"$out" || missing+=("$d"); done
check_eq "admin cache ls upstream.test/lab/small (table): exit 0, every digest shown" "0 " "$rc ${missing[*]}"
code=$(api proxy GET "/api/v1/cache/ls?repo=upstream.test/lab/big")
check_eq "cache ls?repo=upstream.test/lab/big (not pulled yet): 200, nothing listed" "200 0 0" \
  "$code $(jq '.blobs | length' "$T/api.body" 2>/dev/null) $(jq '.manifests | length' "$T/api.body" 2>/dev/null)"

# ---------------------------------------------------------------- purge
out=$(adm proxy --json cache purge upstream.test/lab/small 2>&1)
rc=$?
check_true "admin cache purge upstream.test/lab/small: exit 0, blobs >= $nb, manifests >= 1, tags >= 1" "exit $rc: $out" \
  jqt --argjson n "$nb" '.blobs >= $n and .manifests >= 1 and .tags >= 1' <<<"$out"
code=$(api proxy GET /api/v1/cache/stats)
check_true "stats after the purge show fewer blobs and manifests" \
  "before $(jq -c . "$T/stats1.json"), after $(cat "$T/api.body")" \
  jqt --slurpfile b "$T/stats1.json" '.blobs < $b[0].blobs and .manifests < $b[0].manifests and .blob_bytes < $b[0].blob_bytes' "$T/api.body"
code=$(api proxy GET "/api/v1/cache/ls?repo=upstream.test/lab/small")
check_eq "cache ls?repo=upstream.test/lab/small after the purge: nothing" "200 0 0" \
  "$code $(jq '.blobs | length' "$T/api.body" 2>/dev/null) $(jq '.manifests | length' "$T/api.body" 2>/dev/null)"
out=$(adm proxy cache purge upstream.test/lab/small 2>&1)
check_eq "purging it again: exit 2 (nothing matched)" 2 $?
b3=$(upstream_blob_gets "$ULOG")
check "pull of lab/small:v1 after the purge" \
  sk copy -q --src-tls-verify=false "docker://$P/lab/small:v1" "oci:$T/pull-small3:x"
b4=$(upstream_blob_gets "$ULOG")
check_true "... went upstream again for its blobs (>= $nb blob GETs)" "upstream blob GETs: $((b4 - b3))" \
  test $((b4 - b3)) -ge "$nb"
# purge one digest: the largest small layer
PD=$(largest_layer "$UP" lab/small v1)
out=$(adm proxy --json cache purge "$PD" 2>&1)
check_true "admin cache purge $PD (one blob): exit 0, blobs == 1" "$out" jqt '.blobs == 1' <<<"$out"
b5=$(upstream_blob_gets "$ULOG")
s=$(blob_sha "$P" lab/small "$PD")
b6=$(upstream_blob_gets "$ULOG")
check_eq "GET of the purged blob: right bytes, fetched upstream once" "$PD 1" "$s $((b6 - b5))"
out=$(adm proxy cache gc 2>&1)
check_true "admin cache gc: exit 0, says what it removed" "$out" grep -q '^gc removed' <<<"$out"
code=$(api proxy POST /api/v1/cache/gc)
check_true "POST /api/v1/cache/gc: 200 {blobs, bytes, manifests}" "HTTP $code $(head -c 200 "$T/api.body")" \
  jqt '(.blobs|type) == "number" and (.bytes|type) == "number" and (.manifests|type) == "number"' "$T/api.body"

# ---------------------------------------------------------------- prefetch
adm proxy cache purge upstream.test/lab/small >/dev/null 2>&1
code=$(api proxy POST "/api/v1/prefetch?image=upstream.test/lab/small:v1")
check_eq "POST /api/v1/prefetch?image=upstream.test/lab/small:v1: 200" 200 "$code"
cp "$T/api.body" "$T/prefetch1.jsonl"
check_true "prefetch stream: a manifest event, a blob event per blob (cached:false), done last" \
  "$(tr '\n' ' ' <"$T/prefetch1.jsonl" | head -c 300)" \
  jqt -s --arg d "$SMALLD" --argjson n "$nb" \
  '(map(select(.event == "manifest" and .digest == $d)) | length) == 1 and (map(select(.event == "blob" and .cached == false and (.size|type) == "number")) | length) == $n and (last.event == "done") and last.digest == $d and last.blobs == $n and last.manifests == 1 and last.bytes > 0' \
  "$T/prefetch1.jsonl"
b7=$(upstream_blob_gets "$ULOG")
check "skopeo pull of lab/small:v1 after the prefetch" \
  sk copy -q --src-tls-verify=false "docker://$P/lab/small:v1" "oci:$T/pull-small4:x"
b8=$(upstream_blob_gets "$ULOG")
check_eq "... sent no blob GET upstream" 0 $((b8 - b7))
# a second prefetch: everything cached
out=$(adm proxy --json prefetch upstream.test/lab/small:v1 2>"$T/pf2.err")
rc=$?
check_true "admin --json prefetch again: exit 0, every blob event cached:true" "exit $rc: $(tail -c 300 <<<"$out") $(cat "$T/pf2.err")" \
  jqt -s '(map(select(.event == "blob")) | length) > 0 and (map(select(.event == "blob" and .cached != true)) | length) == 0 and last.event == "done"' <<<"$out"
# an index: every child
b9=$(upstream_blob_gets "$ULOG")
out=$(adm proxy prefetch upstream.test/lab/multi:v1 2>"$T/pf3.err")
rc=$?
check_true "admin prefetch upstream.test/lab/multi:v1 (index, not a TTY): exit 0, one result line, nothing on stderr" \
  "exit $rc: $out | $(cat "$T/pf3.err")" \
  bash -c "[[ $rc == 0 && \$(wc -l <<<\"\$0\") == 1 && ! -s '$T/pf3.err' ]] && grep -q '^prefetched .*$MULTID.*3 manifests' <<<\"\$0\"" "$out"
b10=$(upstream_blob_gets "$ULOG")
check "skopeo copy --all of lab/multi:v1 after the prefetch" \
  sk copy -q --all --src-tls-verify=false "docker://$P/lab/multi:v1" "oci:$T/pull-multi:x"
b11=$(upstream_blob_gets "$ULOG")
check_true "prefetch of the index fetched blobs; the copy --all after it sent no blob GET upstream" \
  "prefetch: $((b10 - b9)) GETs, copy: $((b11 - b10))" bash -c "(( $((b10 - b9)) > 0 && $((b11 - b10)) == 0 ))"
# Docker Hub naming on the docker.io upstream: "docker.io/hello" = docker.io/library/hello:latest
HELLOD=$(manifest_digest "$UP" library/hello latest)
out=$(adm proxy --json prefetch docker.io/hello 2>&1)
check_true "admin prefetch docker.io/hello (library/, :latest): done with library/hello:latest's digest" \
  "$(tail -c 300 <<<"$out")" jqt -s --arg d "$HELLOD" 'last.event == "done" and last.digest == $d' <<<"$out"
code=$(api proxy GET "/api/v1/cache/ls?repo=docker.io/library/hello")
check_true "... cache ls?repo=docker.io/library/hello lists it, tagged docker.io/library/hello:latest" \
  "HTTP $code $(head -c 300 "$T/api.body")" \
  jqt --arg d "$HELLOD" '.manifests | map(select(.digest == $d and (.tags | index("docker.io/library/hello:latest")))) | length == 1' "$T/api.body"
# no upstream name: the default upstream
out=$(adm proxy --json prefetch lab/small:v2s2 2>&1)
check_true "admin prefetch lab/small:v2s2 (no upstream name: the default upstream): done" "$(tail -c 300 <<<"$out")" \
  jqt -s --arg d "$(manifest_digest "$UP" lab/small v2s2)" 'last.event == "done" and last.digest == $d' <<<"$out"
out=$(adm proxy prefetch upstream.test/lab/small:no-such-tag 2>&1)
rc=$?
check_true "admin prefetch of a missing tag: exit 2 with the error" "exit $rc: $out" \
  bash -c "[[ $rc == 2 ]] && grep -qi 'unknown\|not found\|no such' <<<\"\$0\"" "$out"
code=$(api proxy POST "/api/v1/prefetch?image=upstream.test/lab/small:no-such-tag")
check_true "POST prefetch of a missing tag: an OCI error status or an error event last" \
  "HTTP $code: $(head -c 200 "$T/api.body")" \
  bash -c "[[ $code == 404 ]] || { [[ $code == 200 ]] && jqt -s 'last.event == \"error\" and (last.code|length) > 0' '$T/api.body'; }"
code=$(api proxy POST "/api/v1/prefetch?image=UPPER/Case:%20bad")
check_eq "POST prefetch of a malformed reference: 400" 400 "$code"
code=$(api proxy POST "/api/v1/prefetch")
check_eq "POST prefetch without image: 400" 400 "$code"

# ---------------------------------------------------------------- fsck finds on-disk corruption
check "cold skopeo pull of lab/big:v1 through the proxy (for fsck)" \
  sk copy -q --src-tls-verify=false "docker://$P/lab/big:v1" "oci:$T/pull-big1:x"
out=$(adm proxy cache fsck 2>&1)
check_eq "admin cache fsck on a healthy cache: exit 0" 0 $?
log "fsck: $out"
stop_bg proxy
BF=$(find "$T/proxy-data/blobs" -type f -printf '%s %p\n' 2>/dev/null | sort -n | tail -1 | cut -d' ' -f2)
if [[ -n $BF ]]; then
  sz=$(stat -c %s "$BF")
  log "corrupting 16 bytes in the middle of $(basename "$BF") ($((sz / MiB)) MiB)"
  head -c 16 /dev/urandom >"$T/junk"
  if dd if="$T/junk" of="$BF" bs=1 seek=$((sz / 2)) count=16 conv=notrunc status=none &&
     [[ $(stat -c %s "$BF") == "$sz" ]] && cmp -s -n 16 -i 0:$((sz / 2)) "$T/junk" "$BF"; then
    ok "corrupted the largest layer file on disk"
  else
    not_ok "corrupted the largest layer file on disk" "dd failed, or $BF does not hold the 16 new bytes at its middle with its size unchanged"
  fi
else
  not_ok "corrupted the largest layer file on disk" "no file under $T/proxy-data/blobs: $(ls "$T/proxy-data" | head -20 | tr '\n' ' ')"
fi
start_admin_proxy proxy "${PROXY_ARGS[@]}" ||
  { not_ok "proxy restarts on the corrupted data dir" "$(tail -3 "$T/proxy.log")"; }
out=$(adm proxy cache fsck 2>"$T/fsck.err")
rc=$?
log "fsck: $(tr '\n' ' ' <<<"$out") $(cat "$T/fsck.err")"
check_eq "admin cache fsck after the corruption: exit 1" 1 "$rc"
check_true "... lists the corrupted big blob" "$out $(cat "$T/fsck.err")" grep -q "$BIGBLOB" <<<"$out"
code=$(api proxy POST /api/v1/cache/fsck)
check_true "a second fsck (JSON): nothing bad any more, checked > 0" "HTTP $code $(head -c 300 "$T/api.body")" \
  jqt '.checked > 0 and (.bad | length) == 0 and .dropped == 0' "$T/api.body"
f0=$(upstream_blob_gets "$ULOG")
s=$(blob_sha "$P" lab/big "$BIGBLOB")
f1=$(upstream_blob_gets "$ULOG")
check_eq "the next GET of the dropped blob goes upstream and returns the right bytes" "$BIGBLOB 1" "$s $((f1 - f0))"
s=$(blob_sha "$P" lab/big "$BIGBLOB")
f2=$(upstream_blob_gets "$ULOG")
check_eq "... and the GET after it is a cache hit with the right bytes" "$BIGBLOB 0" "$s $((f2 - f1))"

# ---------------------------------------------------------------- kill -9 during a cold fetch
# A throttled forwarder (about 25 MiB/s) in front of the upstream, so the 200 MiB fetch takes ~8 s.
cat >"$T/slow_upstream.py" <<'PY'
import http.client, http.server, socketserver, sys, time, urllib.parse
HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "host"}
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, fmt, *a):
        sys.stderr.write("%s - - [%s] %s\n" % (self.client_address[0], self.log_date_time_string(), fmt % a)); sys.stderr.flush()
    def do_GET(self): self.fwd("GET")
    def do_HEAD(self): self.fwd("HEAD")
    def fwd(self, m):
        up = self.server.up
        c = http.client.HTTPConnection(up.hostname, up.port, timeout=120)
        h = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
        h["Host"] = up.netloc
        try:
            c.request(m, self.path, headers=h); r = c.getresponse()
        except OSError as e:
            self.send_error(502, str(e)); return
        body = None if m == "HEAD" else r
        n = r.getheader("Content-Length")
        if n is None and m == "GET":
            data = r.read(); n = str(len(data))
        self.send_response(r.status, r.reason)
        for k, v in r.getheaders():
            if k.lower() not in HOP and k.lower() != "content-length": self.send_header(k, v)
        if n is not None: self.send_header("Content-Length", n)
        self.end_headers()
        if m == "HEAD": c.close(); return
        try:
            if n is not None and body is r:
                left, t0, sent = int(n), time.time(), 0
                while left > 0:
                    b = r.read(min(65536, left))
                    if not b: break
                    self.wfile.write(b); left -= len(b); sent += len(b)
                    ahead = sent / self.server.rate - (time.time() - t0)
                    if ahead > 0: time.sleep(ahead)
            else:
                self.wfile.write(data)
        except OSError:
            self.close_connection = True
        finally:
            c.close()
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True; allow_reuse_address = True
s = S(("127.0.0.1", int(sys.argv[1])), H)
s.up = urllib.parse.urlsplit(sys.argv[2]); s.rate = float(sys.argv[3])
s.serve_forever()
PY
SLOWPORT=$(free_port)
start_bg slowup "$PY" "$T/slow_upstream.py" "$SLOWPORT" "http://$UP" $((25 * MiB))
wait_http "http://127.0.0.1:$SLOWPORT/v2/" 20 slowup || not_ok "throttled upstream starts" "$(tail -3 "$T/slowup.log")"
TOKFILE[proxy-kill]=$T/token
start_admin_proxy proxy-kill --upstream "upstream.test=http://127.0.0.1:$SLOWPORT" --admin-token-file "$T/token" ||
  not_ok "proxy-kill starts" "$(tail -3 "$T/proxy-kill.log")"
PK=${ADDR[proxy-kill]}
curl -sS --max-time 300 -o /dev/null "http://$PK/v2/lab/big/blobs/$BIGBLOB" 2>/dev/null &
cpid=$!
grown=0
for _ in $(seq 100); do
  sleep 0.2
  if (($(du_b "$T/proxy-kill-data") > 60 * MiB)); then grown=1; break; fi
done
inflight=$(msum <(api proxy-kill GET /metrics >/dev/null; cat "$T/api.body") portcullis_inflight_fetches)
log "proxy-kill data dir before kill -9: $(du_b "$T/proxy-kill-data") bytes ($(du_breakdown "$T/proxy-kill-data")), inflight fetches $inflight"
check_eq "a cold 200 MiB fetch is under way (data dir > 60 MiB, 1 fetch in flight)" "1 1" "$grown $inflight"
kill9 proxy-kill
pre=$(du_b "$T/proxy-kill-data")   # what the kill left on disk
wait "$cpid" 2>/dev/null
start_admin_proxy proxy-kill --upstream "upstream.test=http://127.0.0.1:$SLOWPORT" --admin-token-file "$T/token" ||
  not_ok "proxy-kill restarts on its data dir after kill -9" "$(tail -3 "$T/proxy-kill.log")"
check_true "the restarted proxy logged that it removed a half-written blob" "$(grep -i 'half' "$T/proxy-kill.log" | tail -2)" \
  grep -q 'removed blobs left half-written' "$T/proxy-kill.log"
# Independent evidence (cache ls never lists a pending blob, so it could not fail): the bytes
# on disk go away, fsck finds nothing wrong in what is left, and the next GET fetches the whole
# blob upstream again.
post=$pre
for _ in $(seq 50); do   # up to 10 s for RocksDB to delete the files
  post=$(du_b "$T/proxy-kill-data")
  ((post < pre / 2)) && break
  sleep 0.2
done
# Failed before Store::Open compacted the dropped chunk range (issue 13): the keys went, the
# bytes stayed in RocksDB's blob files.
check_true "the restart freed the half-written blob's bytes on disk (data dir below half of what the kill left)" \
  "data dir at kill -9 $pre bytes, ${post} bytes 10 s after the restart ($(du_breakdown "$T/proxy-kill-data"))" \
  test "$post" -lt $((pre / 2))
log "data dir at kill -9 $pre bytes, ${post} bytes after the restart ($(du_breakdown "$T/proxy-kill-data"))"
out=$(adm proxy-kill cache fsck 2>&1)
check_eq "after the restart: admin cache fsck exit 0" 0 $?
# proxy-kill's data dir only ever held that one blob: no record of it may survive the restart
# (a surviving pending record would be checked, and found bad)
check_true "... and checked nothing ('checked 0 ...: all match'): no record of the half blob survived" "$out" \
  grep -qE '^checked 0 stored blobs and manifests: all match their digests' <<<"$out"
k0=$(upstream_blob_gets "$T/slowup.log")
s=$(blob_sha "$PK" lab/big "$BIGBLOB")
k1=$(upstream_blob_gets "$T/slowup.log")
check_eq "after the restart a full GET of the blob returns it whole (sha256 = digest)" "$BIGBLOB" "$s"
check_true "... fetched upstream again from the start (1 more blob GET in the throttled upstream's log)" \
  "blob GETs '$k0' -> '$k1'" bash -c '[[ $1 =~ ^[1-9][0-9]*$ && $2 =~ ^[0-9]+$ ]] && (($2 - $1 == 1))' _ "$k0" "$k1"
s=$(blob_sha "$PK" lab/big "$BIGBLOB")
check_eq "... and again, from the cache" "$BIGBLOB" "$s"
code=$(api proxy-kill POST /api/v1/cache/fsck)
check_true "... and fsck re-hashes it: checked >= 1, nothing bad" "HTTP $code $(head -c 300 "$T/api.body")" \
  jqt '.checked >= 1 and (.bad | length) == 0 and .dropped == 0' "$T/api.body"
code=$(api proxy-kill GET "/api/v1/cache/ls")
check_true "... and it is listed complete with its size" "$(head -c 300 "$T/api.body")" \
  jqt --arg d "$BIGBLOB" '[.blobs[] | select(.digest == $d and .size > 200000000)] | length == 1' "$T/api.body"
stop_bg proxy-kill
stop_bg slowup

# ---------------------------------------------------------------- eviction: --cache-max-bytes
BOUND=$((60 * MiB))
CHUNK=$MiB
OVERHEAD=$((32 * MiB))   # RocksDB WAL, MANIFEST, LOG, OPTIONS, SST files of the small column families
# no --admin-token-file: serve writes <data-dir>/admin.token (0600) itself
TOKFILE[proxy-evict]=$T/proxy-evict-data/admin.token
start_admin_proxy proxy-evict --upstream "upstream.test=http://$UP" --cache-max-bytes "$BOUND" ||
  { not_ok "proxy with --cache-max-bytes $BOUND starts" "$(tail -3 "$T/proxy-evict.log")"; finish; }
PE=${ADDR[proxy-evict]}
check_true "serve generated <data-dir>/admin.token with mode 0600" \
  "$(stat -c '%a %s' "$T/proxy-evict-data/admin.token" 2>&1)" \
  bash -c "[[ \$(stat -c %a '$T/proxy-evict-data/admin.token') == 600 && -s '$T/proxy-evict-data/admin.token' ]]"
out=$(adm proxy-evict --json cache stats 2>&1)
check_true "admin works with the generated token; stats shows max_bytes $BOUND" "$out" \
  jqt --argjson b "$BOUND" '.max_bytes == $b' <<<"$out"
# slow readers of a blob that gets evicted under them (200 MiB > the bound: it is evicted
# within seconds of being cached) must still get it whole: one cold, one joining 3 s later
declare -a spids=()
for i in 1 2; do
  ( curl -sS --max-time 300 --limit-rate 25M "http://$PE/v2/lab/big/blobs/$BIGBLOB" 2>"$T/slow$i.err" |
      sha256sum | cut -d' ' -f1 >"$T/slow$i.sum"
    echo "${PIPESTATUS[0]}" >"$T/slow$i.rc" ) &
  spids[i]=$!
  sleep 3
done
wait "${spids[1]}" "${spids[2]}"
for i in 1 2; do
  check_eq "slow reader $i (25 MiB/s) of the 200 MiB blob while it is cached and evicted: whole, sha256 = digest" \
    "0 $BIGBLOB" "$(cat "$T/slow$i.rc") sha256:$(cat "$T/slow$i.sum")" ||
    log "slow reader $i: curl said: $(head -c 200 "$T/slow$i.err")"
done
maxdu=0 bad=""
for round in 1 2 3; do
  for img in big small big; do
    if ! sk copy -q --src-tls-verify=false "docker://$PE/lab/$img:v1" "oci:$T/evict-$round-$img:x" >"$T/evict.out" 2>&1; then
      bad+=" round $round lab/$img: $(tail -1 "$T/evict.out")"
    fi
    rm -rf "$T/evict-$round-$img"
  done
  # eviction and RocksDB's file deletion run in the background: poll (no fixed sleep)
  for _ in $(seq 150); do d=$(du_b "$T/proxy-evict-data"); ((d < 150 * MiB)) && break; sleep 0.2; done
  log "round $round: data dir $((d / MiB)) MiB ($(du_breakdown "$T/proxy-evict-data")); stats $(adm proxy-evict --json cache stats 2>&1 | tr -d '\n')"
  ((d > maxdu)) && maxdu=$d
done
check_eq "3 rounds of skopeo pulls (big, small, big) through the bounded proxy all succeed" "" "$bad"
for _ in $(seq 150); do d=$(du_b "$T/proxy-evict-data"); ((d < BOUND + CHUNK + OVERHEAD)) && break; sleep 0.2; done
log "after the rounds: data dir $d bytes ($(du_breakdown "$T/proxy-evict-data"))"
check_true "data dir after the pulls settles below bound + 1 chunk + overhead ($(((BOUND + CHUNK + OVERHEAD) / MiB)) MiB) within 30 s" \
  "du -sb = $((d / MiB)) MiB ($d)" test "$d" -lt $((BOUND + CHUNK + OVERHEAD))
check_true "data dir after each round settles well under 200 MiB (< 150 MiB within 30 s)" "max du -sb after a round: $((maxdu / MiB)) MiB" \
  test "$maxdu" -lt $((150 * MiB))
code=$(api proxy-evict GET /api/v1/cache/stats)
check_true "stats: blob_bytes <= max_bytes, evictions > 0, evicted_bytes > 0" "$(cat "$T/api.body")" \
  jqt '.blob_bytes <= .max_bytes and .evictions > 0 and .evicted_bytes > 0' "$T/api.body"
metrics proxy-evict "$T/me.txt"
check_true "portcullis_evictions_total > 0" "$(grep '^portcullis_evictions_total' "$T/me.txt")" \
  gt "$(msum "$T/me.txt" portcullis_evictions_total)" 0
check_true "portcullis_cache_bytes <= the bound" "$(grep '^portcullis_cache_bytes' "$T/me.txt")" \
  test "$(msum "$T/me.txt" portcullis_cache_bytes)" -le "$BOUND"
# pulls keep working and are never broken: manifests whose blobs were evicted get them refetched
d1=$(manifest_digest "$PE" lab/big v1 2>&1)
check_eq "bounded proxy: lab/big:v1 manifest digest = upstream's" "$BIGD" "$d1"
bad=""
for img in big small; do
  for dg in $(image_blobs "$PE" lab/$img v1); do
    s=$(blob_sha "$PE" "lab/$img" "$dg")
    [[ $s == "$dg" ]] || bad+=" lab/$img $dg -> '$s'"
  done
done
check_eq "bounded proxy: every blob of lab/big and lab/small GETs whole with the right digest" "" "$bad"
check "bounded proxy: skopeo pull of lab/small:v1 after the evictions" \
  sk copy -q --src-tls-verify=false "docker://$PE/lab/small:v1" "oci:$T/evict-final:x"
check_eq "... pulled digest = upstream's" "$SMALLD" \
  "$(jq -r '.manifests[0].digest' "$T/evict-final/index.json" 2>/dev/null)"

# ---------------------------------------------------------------- the token never leaks
leaks=$(grep -lF "$TOKEN" "$T"/*.log 2>/dev/null | xargs -r -n1 basename | tr '\n' ' ')
check_eq "the admin token appears in no log" "" "$leaks"
GEN=$(head -1 "$T/proxy-evict-data/admin.token" 2>/dev/null)
leaks=""
[[ -n $GEN ]] && leaks=$(grep -lF "$GEN" "$T"/*.log 2>/dev/null | xargs -r -n1 basename | tr '\n' ' ')
check_eq "the generated admin token appears in no log" "" "$leaks"

finish
