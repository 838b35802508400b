#!/usr/bin/env bash
# Crash rounds (issue 13): kill -9 at a random moment during concurrent cold pulls, again and
# again, on the same data dir.
#   - a real docker-registry upstream holds one image per round (4 random layers of 2-10 MiB,
#     incompressible, so nothing is cached before its round);
#   - a calibration round (no kill) times 8 concurrent cold blob GETs and is the positive
#     control of the judge (8 complete bodies, all right);
#   - then CRASH_ROUNDS rounds (default 10): 8 concurrent cold GETs (2 per layer, so coalesced
#     readers are cut too), kill -9 after a random delay in [0, 0.8 x the calibrated time],
#     halved after each round whose kill found every client done (the first cold pull after a
#     start is the slowest), so kills land before the requests, mid-body, and during the
#     commits after the last byte;
#     restart on the same data dir;
#   - judge of every client: a COMPLETE body (curl exit 0, HTTP 200, as many bytes as
#     Content-Length) must hash to its digest; a cut body is fine;
#   - after each restart `portcullis admin cache fsck` exits 0 and drops nothing; then a full
#     pull of the round's image (skopeo copy through the proxy, and each layer by curl, sha256 =
#     digest) gives the right bytes;
#   - the kills must land mid-body often enough for the suite to mean something (a positive
#     control: clients cut after some bytes in at least a fifth of the rounds).
# Prints the counts: rounds, bodies checked, complete bodies, wrong bodies (must be 0).
source "$(dirname "$0")/lib.sh"
suite_init crash_rounds
need openssl

ROUNDS=${CRASH_ROUNDS:-10}
CLIENTS=8
LAYERS=4
MiB=1048576
BIN=$PORTCULLIS_BIN

# ---------------------------------------------------------------- helpers
# kill9 NAME : SIGKILL the process we started as NAME
kill9() {
  local pid=${PIDS[$1]:-}
  [[ -n $pid ]] || return 0
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  PIDS[$1]=""
}
# ms : milliseconds since the epoch
ms() { date +%s%3N; }

# make_image REPO : push one image of LAYERS random layers (2-10 MiB each) into the upstream;
# sets LAYER_DIGESTS (array)
make_image() {
  local i sizes=()
  for ((i = 0; i < LAYERS; i++)); do sizes+=($(((2 + RANDOM % 9) * MiB + RANDOM))); done
  push_random_image "$UP" "$1" v1 "${sizes[@]}"
}

# start_clients ROUND : CLIENTS concurrent GETs of the round's layers (client i: layer i % LAYERS)
# through the proxy; files in $T/c.ROUND.i.*; sets CPIDS
start_clients() {
  local r=$1 i d
  CPIDS=()
  for ((i = 0; i < CLIENTS; i++)); do
    d=${ROUND_LAYERS[$r]}
    d=$(cut -d' ' -f$((i % LAYERS + 1)) <<<"$d")
    echo "$d" >"$T/c.$r.$i.digest"
    ( curl -sS --max-time 60 -D "$T/c.$r.$i.hdr" -o "$T/c.$r.$i.body" -w '%{http_code} %{size_download}' \
           "http://$P/v2/crash/r$r/blobs/$d" >"$T/c.$r.$i.meta" 2>"$T/c.$r.$i.err"
      echo $? >"$T/c.$r.$i.rc" ) &
    CPIDS+=($!)
  done
}

# judge ROUND : judges each client of ROUND; adds to the totals; prints one line per client that
# was wrong. Sets R_COMPLETE, R_CUT_MID (cut after > 0 bytes), R_WRONG for the round.
judge() {
  local r=$1 i rc meta code size clen sum dg
  R_COMPLETE=0 R_CUT_MID=0 R_WRONG=0
  for ((i = 0; i < CLIENTS; i++)); do
    rc=$(cat "$T/c.$r.$i.rc" 2>/dev/null) meta=$(cat "$T/c.$r.$i.meta" 2>/dev/null) dg=$(cat "$T/c.$r.$i.digest")
    code=${meta% *} size=${meta#* }
    [[ $size =~ ^[0-9]+$ ]] || size=0
    clen=$(awk 'tolower($1)=="content-length:"{print $2}' "$T/c.$r.$i.hdr" 2>/dev/null | tr -d '\r' | tail -1)
    sum=none
    [[ -f $T/c.$r.$i.body ]] && sum=sha256:$(sha256sum <"$T/c.$r.$i.body" | cut -d' ' -f1)
    rm -f "$T/c.$r.$i.body"
    BODIES=$((BODIES + 1))
    if [[ $rc == 0 && $code == 200 && ( -z $clen || $clen == "$size" ) ]]; then
      R_COMPLETE=$((R_COMPLETE + 1))
      if [[ $sum != "$dg" ]]; then
        R_WRONG=$((R_WRONG + 1))
        echo "round $r client $i: COMPLETE body ($size bytes, Content-Length ${clen:-none}) with sha $sum, digest $dg"
      fi
    elif ((size > 0)); then
      R_CUT_MID=$((R_CUT_MID + 1))
    fi
  done
  COMPLETE=$((COMPLETE + R_COMPLETE)) WRONG=$((WRONG + R_WRONG)) CUT_MID=$((CUT_MID + R_CUT_MID))
}

# ---------------------------------------------------------------- peers and images
start_upstream upstream || { not_ok "upstream registry starts" "see $T/upstream.log"; finish; }
UP=${ADDR[upstream]}
declare -a ROUND_LAYERS=()
t0=$(ms)
made=1
for ((r = 0; r <= ROUNDS; r++)); do
  make_image "crash/r$r" >"$T/make.out" 2>&1 || { made=0; break; }
  ROUND_LAYERS[$r]="${LAYER_DIGESTS[*]}"
done
check_true "$((ROUNDS + 1)) images of $LAYERS random 2-10 MiB layers pushed into the upstream ($(($(ms) - t0)) ms)" \
  "$(tail -3 "$T/make.out")" test $made = 1 || finish

ADMIN=127.0.0.1:$(free_port)
openssl rand -hex 32 >"$T/token"
chmod 600 "$T/token"
PROXY_ARGS=(--upstream "upstream.test=http://$UP" --admin-listen "$ADMIN" --admin-token-file "$T/token")
start_proxy proxy "${PROXY_ARGS[@]}" || { not_ok "proxy starts" "$(tail -3 "$T/proxy.log")"; finish; }
P=${ADDR[proxy]}
adm() { "$BIN" admin --server "http://$ADMIN" --token-file "$T/token" "$@"; }

BODIES=0 COMPLETE=0 WRONG=0 CUT_MID=0
# ---------------------------------------------------------------- calibration round (no kill)
t0=$(ms)
start_clients 0
for p in "${CPIDS[@]}"; do wait "$p"; done
CAL_MS=$(($(ms) - t0))
judge 0 >"$T/judge.out"
check_eq "calibration: 8 concurrent cold GETs (no kill) give 8 complete right bodies in ${CAL_MS} ms" \
  "8 0" "$R_COMPLETE $R_WRONG"
MAX_DELAY=$((CAL_MS * 8 / 10 + 20))
log "kill delays drawn from [0, $MAX_DELAY] ms"
BODIES=0 COMPLETE=0 WRONG=0 CUT_MID=0   # the counts below are of the crash rounds only

# ---------------------------------------------------------------- crash rounds
fsck_bad=0 pull_bad=0 restart_bad=0 mid_rounds=0
for ((r = 1; r <= ROUNDS; r++)); do
  delay=$((RANDOM * 32768 + RANDOM))
  delay=$((delay % (MAX_DELAY + 1)))
  start_clients "$r"
  sleep "$(awk -v d="$delay" 'BEGIN { printf "%.3f", d / 1000 }')"
  running=0
  for p in "${CPIDS[@]}"; do kill -0 "$p" 2>/dev/null && running=$((running + 1)); done
  kill9 proxy
  for p in "${CPIDS[@]}"; do wait "$p"; done
  judge "$r" >>"$T/judge.out"
  ((R_CUT_MID > 0)) && mid_rounds=$((mid_rounds + 1))
  log "round $r: kill -9 after $delay ms with $running clients running: $R_COMPLETE complete, $R_CUT_MID cut mid-body, $R_WRONG wrong"
  # The first cold pull after a start (the calibration) is the slowest; when a kill found
  # every client done, later rounds draw from half the range, so kills keep landing mid-body.
  ((running == 0 && MAX_DELAY > 20)) && MAX_DELAY=$((MAX_DELAY / 2)) && log "kill delays now drawn from [0, $MAX_DELAY] ms"

  if ! start_proxy proxy "${PROXY_ARGS[@]}" || ! wait_http "http://$ADMIN/healthz" 30 proxy; then
    restart_bad=$((restart_bad + 1))
    log "round $r: the proxy did not restart: $(tail -3 "$T/proxy.log")"
    break
  fi
  out=$(adm cache fsck --json 2>&1)
  rc=$?
  if [[ $rc != 0 ]] || ! jq -e '(.bad | length) == 0 and .dropped == 0' <<<"$out" >/dev/null 2>&1; then
    fsck_bad=$((fsck_bad + 1))
    log "round $r: fsck exit $rc: $(head -c 300 <<<"$out")"
  fi
  # a full pull of the round's image through the restarted proxy
  rm -rf "$T/pull"
  if ! sk copy -q --src-tls-verify=false "docker://$P/crash/r$r:v1" "oci:$T/pull:x" >"$T/skopeo.out" 2>&1; then
    pull_bad=$((pull_bad + 1))
    log "round $r: skopeo copy failed: $(tail -2 "$T/skopeo.out")"
  fi
  for d in ${ROUND_LAYERS[$r]}; do
    s=sha256:$(curl -sS --max-time 60 -f "http://$P/v2/crash/r$r/blobs/$d" | sha256sum | cut -d' ' -f1)
    if [[ $s != "$d" ]]; then
      pull_bad=$((pull_bad + 1))
      log "round $r: GET of layer $d after the restart gave $s"
    fi
  done
done
rm -rf "$T/pull"

log "crash rounds: $ROUNDS rounds, $BODIES bodies checked, $COMPLETE complete bodies, $CUT_MID cut mid-body (in $mid_rounds rounds), $WRONG wrong bodies"
check_eq "no client received a complete body with wrong bytes ($BODIES bodies in $ROUNDS rounds, $COMPLETE complete)" \
  0 "$WRONG" || sed 's/^/#   /' "$T/judge.out" | head -20
check_eq "the proxy restarted on its data dir after each of the $ROUNDS kills" 0 "$restart_bad"
check_eq "after each restart cache fsck exits 0 and finds nothing bad" 0 "$fsck_bad"
check_eq "after each restart a full pull (skopeo, and each layer's sha256) gives the right bytes" 0 "$pull_bad"
min_mid=$((ROUNDS / 5 > 0 ? ROUNDS / 5 : 1))
check_true "the kills landed mid-body: clients were cut after some bytes in >= $min_mid of $ROUNDS rounds" \
  "only in $mid_rounds rounds ($CUT_MID clients)" test "$mid_rounds" -ge "$min_mid"
check_true "the restarts cleaned half-written blobs (log line at least once)" "no 'removed blobs left half-written' in proxy.log" \
  grep -q 'removed blobs left half-written' "$T/proxy.log"
cleaned=$(grep 'removed blobs left half-written' "$T/proxy.log" | jq -s 'map(.count) | add // 0' 2>/dev/null)
echo "crash rounds: rounds=$ROUNDS bodies_checked=$BODIES complete_bodies=$COMPLETE cut_mid_body=$CUT_MID wrong_bodies=$WRONG half_written_blobs_cleaned=${cleaned:-?}"
finish
