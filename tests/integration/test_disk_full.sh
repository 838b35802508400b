#!/usr/bin/env bash
# Disk full (issue 13): the proxy's data dir is a small tmpfs that fills during a cold pull of a
# layer bigger than the tmpfs.
#   - every client of the big layer gets a clear error or is cut before its last byte; none
#     completes a body with wrong bytes (complete = curl exit 0, HTTP 200, full Content-Length);
#   - the proxy stays up: /healthz and /v2/ answer, a cached image is still served whole
#     (skopeo and each blob's sha256), while the disk is still full;
#   - nothing partial is left marked complete: `cache ls` does not list the big layer, `cache
#     fsck` exits 0 and drops nothing;
#   - when space returns (the tmpfs grown with mount -o remount,size=) the same pull succeeds
#     with the right bytes, and it is cached (listed complete; a second GET sends no blob GET
#     upstream);
#   - then a filler file takes every free byte (so the small writes fail too: records, WAL):
#     a cold pull fails cleanly, cached layers are served, and once the filler is removed the
#     pull succeeds and is cached.
# The tmpfs is unmounted in the EXIT trap (lib.sh: _umount_under $T, after the proxy stopped).
# DISK_FULL_CACHE_WRITES=direct runs it all with `--cache-writes direct` (O_DIRECT flushes,
# where the tmpfs takes them: Linux 6.6 and later); the default is the proxy's default, buffered.
source "$(dirname "$0")/lib.sh"
CACHE_WRITES=${DISK_FULL_CACHE_WRITES:-buffered}
suite_init "disk_full_$CACHE_WRITES"
need openssl mount umount findmnt

MiB=1048576
BIN=$PORTCULLIS_BIN
TMPFS_MB=${DISK_FULL_TMPFS_MB:-48}
BIG=$((80 * MiB + 12345))   # bigger than the tmpfs
CLIENTS=3

# ---------------------------------------------------------------- peers, images, the small disk
start_upstream upstream || { not_ok "upstream registry starts" "see $T/upstream.log"; finish; }
UP=${ADDR[upstream]}
ULOG=$T/upstream.log
check "a small image (2 random 1 MiB layers) pushed into the upstream" \
  push_random_image "$UP" disk/small v1 $((MiB + 1)) $((MiB + 2)) || finish
SMALL_LAYERS=("${LAYER_DIGESTS[@]}")
check "a big image (one random $((BIG / MiB)) MiB layer) pushed into the upstream" \
  push_random_image "$UP" disk/big v1 "$BIG" || finish
BIGBLOB=${LAYER_DIGESTS[0]}

DATA=$T/proxy-data
mkdir -p "$DATA"
check "a ${TMPFS_MB} MiB tmpfs mounted as the proxy's data dir" mount -t tmpfs -o "size=${TMPFS_MB}m,mode=0700" tmpfs "$DATA" ||
  finish
check_eq "... and it is a tmpfs" tmpfs "$(findmnt -n -o FSTYPE "$DATA")"

ADMIN=127.0.0.1:$(free_port)
openssl rand -hex 32 >"$T/token"
chmod 600 "$T/token"
start_proxy proxy --upstream "upstream.test=http://$UP" --tag-ttl 600 --admin-listen "$ADMIN" --admin-token-file "$T/token" \
  --cache-writes "$CACHE_WRITES" || { not_ok "proxy starts on the tmpfs" "$(tail -3 "$T/proxy.log")"; finish; }
P=${ADDR[proxy]}
# Which write path the store took on this tmpfs: buffered unless direct was asked for and the
# tmpfs takes O_DIRECT (Linux 6.6 and later); every path must pass.
direct_writes=$(grep -o '"cache_direct_writes":[a-z]*' "$T/proxy.log" | head -1)
echo "# --cache-writes $CACHE_WRITES: the store's flushes: $direct_writes"
[[ $CACHE_WRITES == direct ]] ||
  check_eq "flushes are buffered by default" '"cache_direct_writes":false' "$direct_writes"
adm() { "$BIN" admin --server "http://$ADMIN" --token-file "$T/token" "$@"; }
blob_sha() { echo "sha256:$(curl -sS --max-time 120 -f "http://$P/v2/$1/blobs/$2" | sha256sum | cut -d' ' -f1)"; }
listed() { adm cache ls --json 2>/dev/null | jq -e --arg d "$1" '[.blobs[] | select(.digest == $d)] | length == 1' >/dev/null; }
export -f listed adm
export BIN ADMIN T

check "the small image pulled through the proxy (skopeo), so it is cached" \
  sk copy -q --src-tls-verify=false "docker://$P/disk/small:v1" "oci:$T/small1:x"
check_true "... its layers are listed in the cache" "cache ls: $(adm cache ls 2>&1 | head -5)" \
  bash -c 'for d in "$@"; do listed "$d" || exit 1; done' _ "${SMALL_LAYERS[@]}"
# ---------------------------------------------------------------- the disk fills
b0=$(upstream_blob_gets "$ULOG")
pids=()
for ((i = 1; i <= CLIENTS; i++)); do
  ( curl -sS --max-time 120 -D "$T/big.$i.hdr" -o "$T/big.$i.body" -w '%{http_code} %{size_download}' \
         "http://$P/v2/disk/big/blobs/$BIGBLOB" >"$T/big.$i.meta" 2>"$T/big.$i.err"
    echo $? >"$T/big.$i.rc" ) &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
complete=0 wrong=0 refused=0 cut=0 desc=""
for ((i = 1; i <= CLIENTS; i++)); do
  rc=$(cat "$T/big.$i.rc") meta=$(cat "$T/big.$i.meta")
  code=${meta% *} size=${meta#* }
  clen=$(awk 'tolower($1)=="content-length:"{print $2}' "$T/big.$i.hdr" 2>/dev/null | tr -d '\r' | tail -1)
  sum=sha256:$(sha256sum <"$T/big.$i.body" 2>/dev/null | cut -d' ' -f1)
  rm -f "$T/big.$i.body"
  if [[ $rc == 0 && $code == 200 && ( -z $clen || $clen == "$size" ) ]]; then
    complete=$((complete + 1))
    [[ $sum == "$BIGBLOB" ]] || wrong=$((wrong + 1))
  elif [[ $code =~ ^[45][0-9][0-9]$ ]]; then
    refused=$((refused + 1))
  else
    cut=$((cut + 1))
  fi
  desc+="client $i: curl $rc, HTTP $code, $size of ${clen:-?} bytes; "
done
log "cold pull on the full disk: $desc"
log "data dir during the fill: $(df -B1 --output=used,size "$DATA" | tail -1)"
check_eq "no client of the big layer completed a body with wrong bytes ($CLIENTS clients: $complete complete, $cut cut, $refused error answers)" \
  0 "$wrong"
check_true "... and the disk did fill: not every client got the whole layer (a control that the tmpfs is too small)" \
  "$desc" test "$complete" -lt "$CLIENTS"
check_true "the proxy logged the write failure (No space / ENOSPC)" "$(grep -iE 'error|warn' "$T/proxy.log" | tail -2)" \
  grep -qiE 'no space|nospace|ENOSPC' "$T/proxy.log"

# ---------------------------------------------------------------- still up, cached things served
check "the proxy process is still running" is_running proxy
check_eq "/healthz answers 200" 200 "$(http_status GET "http://$ADMIN/healthz")"
check_eq "GET /v2/ answers 200" 200 "$(http_status GET "http://$P/v2/")"
for d in "${SMALL_LAYERS[@]}"; do
  check_eq "a cached layer is still served whole (${d:7:12})" "$d" "$(blob_sha disk/small "$d")"
done
rm -rf "$T/small2"
check "the cached small image still pulls (skopeo) while the disk is full" \
  sk copy -q --src-tls-verify=false "docker://$P/disk/small:v1" "oci:$T/small2:x"
check_true "the big layer is not listed in the cache (nothing partial marked complete)" "cache ls lists $BIGBLOB" \
  bash -c '! listed "$1"' _ "$BIGBLOB"
out=$(adm cache fsck --json 2>&1)
check_eq "cache fsck exits 0 on the full disk" 0 $?
check_true "... and drops nothing" "$out" jq -e '(.bad | length) == 0 and .dropped == 0' <<<"$out"
# Asked again while the disk is still full: an error or a cut, never a complete wrong body.
meta=$(curl -sS --max-time 120 -D "$T/again.hdr" -o "$T/again.body" -w '%{http_code} %{size_download}' \
       "http://$P/v2/disk/big/blobs/$BIGBLOB" 2>"$T/again.err")
rc=$?
sum=$(sha_of "$T/again.body" 2>/dev/null)
rm -f "$T/again.body"
check_true "a second cold GET on the still-full disk: an error or a cut, never a complete wrong body" \
  "curl $rc, $meta, sha $sum" bash -c '[[ $1 != 0 || ${2%% *} != 200 || $3 == "$4" ]]' _ "$rc" "$meta" "$sum" "$BIGBLOB"

# ---------------------------------------------------------------- space returns
check "the tmpfs grown to 256 MiB (space returns)" mount -o remount,size=256m "$DATA"
got="" tries=0
for tries in $(seq 30); do   # the store may need a moment to leave its read-only state
  got=$(blob_sha disk/big "$BIGBLOB")
  [[ $got == "$BIGBLOB" ]] && break
  sleep 1
done
check_eq "after space returned the same pull gives the right bytes (attempt $tries)" "$BIGBLOB" "$got"
ok_listed=0
for _ in $(seq 50); do listed "$BIGBLOB" && { ok_listed=1; break; }; sleep 0.2; done
check_eq "... and the big layer is now cached (listed complete)" 1 "$ok_listed"
b1=$(upstream_blob_gets "$ULOG")
check_eq "... a further GET gives the right bytes" "$BIGBLOB" "$(blob_sha disk/big "$BIGBLOB")"
b2=$(upstream_blob_gets "$ULOG")
check_true "... from the cache: no blob GET upstream (positive control: the fills sent >= 1)" \
  "blob GETs: $b0 before the fill, $b1 after the recovery, $b2 after the cached GET" \
  bash -c '(($2 > $1 && $3 == $2))' _ "$b0" "$b1" "$b2"
out=$(adm cache fsck --json 2>&1)
check_true "cache fsck after the recovery: exit 0, the big layer among the checked, nothing bad" "$out" \
  jq -e '.checked >= 4 and (.bad | length) == 0' <<<"$out"

# ---------------------------------------------------------------- full to the last byte, then freed
# A filler file takes every free byte: now even the small writes (manifest and tag records, the
# write-ahead log) fail, not only the layer's chunks.
check "push a third image (one random 3 MiB layer) into the upstream" push_random_image "$UP" disk/late v1 $((3 * MiB)) ||
  finish
LATEBLOB=${LAYER_DIGESTS[0]}
dd if=/dev/zero of="$DATA/filler" bs=1M count=1024 2>/dev/null   # ends at ENOSPC
check_true "a filler file took all free space of the tmpfs" "$(df -B1 --output=avail "$DATA" | tail -1) bytes free" \
  test "$(df -B1 --output=avail "$DATA" | tail -1)" -lt $((1 * MiB))
code=$(http_status GET "http://$P/v2/disk/late/manifests/v1" -H "Accept: $ACCEPT_ALL")
meta=$(curl -sS --max-time 120 -D "$T/late.hdr" -o "$T/late.body" -w '%{http_code} %{size_download}' \
       "http://$P/v2/disk/late/blobs/$LATEBLOB" 2>"$T/late.err")
rc=$?
sum=$(sha_of "$T/late.body" 2>/dev/null)
rm -f "$T/late.body"
log "on the brim-full disk: manifest GET HTTP $code; blob GET curl $rc, $meta"
check_true "on the brim-full disk a cold blob GET is an error, a cut or the right bytes, never a complete wrong body" \
  "curl $rc, $meta, sha $sum" bash -c '[[ $1 != 0 || ${2%% *} != 200 || $3 == "$4" ]]' _ "$rc" "$meta" "$sum" "$LATEBLOB"
check_eq "... the proxy still answers /healthz" 200 "$(http_status GET "http://$ADMIN/healthz")"
check_eq "... and serves the cached big layer whole" "$BIGBLOB" "$(blob_sha disk/big "$BIGBLOB")"
check "the filler removed (space returns)" rm -f "$DATA/filler"
got="" tries=0
for tries in $(seq 30); do
  got=$(blob_sha disk/late "$LATEBLOB" 2>/dev/null)
  [[ $got == "$LATEBLOB" ]] && break
  sleep 1
done
check_eq "after the filler went the cold pull gives the right bytes (attempt $tries)" "$LATEBLOB" "$got"
rm -rf "$T/late"
check "... and the whole image pulls (skopeo)" sk copy -q --src-tls-verify=false "docker://$P/disk/late:v1" "oci:$T/late:x"
ok_listed=0
for _ in $(seq 50); do listed "$LATEBLOB" && { ok_listed=1; break; }; sleep 0.2; done
check_eq "... and its layer is cached (listed complete)" 1 "$ok_listed"
check "the proxy is still running at the end" is_running proxy
finish
