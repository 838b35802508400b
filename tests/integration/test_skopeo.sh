#!/usr/bin/env bash
# skopeo pulls through the proxy: addressed directly (docker://PROXY/repo:tag) and as a
# registries.conf [[registry.mirror]] with a path prefix (PROXY/upstream.test). Every manifest
# digest seen through the proxy must equal the upstream's; copy --all keeps both platforms.
source "$(dirname "$0")/lib.sh"
suite_init skopeo

start_upstream upstream || { not_ok "upstream registry starts" "see $T/upstream.log"; finish; }
UP=${ADDR[upstream]}
check "test images pushed into the upstream" push_images "$UP" || finish
start_proxy proxy --upstream "upstream.test=http://$UP" ||
  { not_ok "proxy starts and answers GET /v2/" "$(tail -3 "$T/proxy.log")"; finish; }
ok "proxy starts and answers GET /v2/"
P=${ADDR[proxy]}

REFS=(lab/small:v1 lab/small:v2s2 lab/big:v1 lab/multi:v1 library/hello:latest)
declare -A UPD=()
for ref in "${REFS[@]}"; do
  UPD[$ref]=$(manifest_digest "$UP" "${ref%:*}" "${ref#*:}") || { not_ok "upstream digest of $ref" "$(manifest_digest "$UP" "${ref%:*}" "${ref#*:}" 2>&1)"; finish; }
done

# raw_digest SKOPEO-ARGS... : sha256 of `skopeo inspect --raw` output
raw_digest() {
  timeout 300 skopeo "$@" >"$T/raw.out" 2>"$T/raw.err" || { tail -2 "$T/raw.err" >&2; return 1; }
  echo "sha256:$(sha256sum <"$T/raw.out" | cut -d' ' -f1)"
}
# layout_ok DIR : every blob of an OCI layout matches its name
layout_ok() {
  local f bad=0
  [[ -f $1/index.json ]] || { echo "no index.json in $1"; return 1; }
  for f in "$1"/blobs/sha256/*; do
    [[ $(sha256sum <"$f" | cut -d' ' -f1) == "$(basename "$f")" ]] || { echo "bad blob $f"; bad=1; }
  done
  return $bad
}

# ---------------------------------------------------------------- 1. proxy addressed directly
for ref in lab/small:v1 lab/small:v2s2 lab/big:v1 library/hello:latest; do
  n=${ref//[\/:]/-}
  check "skopeo copy docker://PROXY/$ref -> oci: (direct)" \
    sk copy -q --src-tls-verify=false "docker://$P/$ref" "oci:$T/direct-$n:x" &&
    check "blobs of the copied $ref are intact" layout_ok "$T/direct-$n"
  d=$(raw_digest --registries-conf "$(plain_registries_conf)" inspect --raw --tls-verify=false "docker://$P/$ref" 2>&1)
  check_eq "skopeo inspect --raw digest of $ref via proxy equals upstream's" "${UPD[$ref]}" "$d"
  d=$(manifest_digest "$P" "${ref%:*}" "${ref#*:}" 2>&1)
  check_eq "GET manifest $ref via proxy: Docker-Content-Digest = sha256(body) = upstream's" "${UPD[$ref]}" "$d"
done

ns=$(curl -sS --max-time 30 -o /dev/null -H "Accept: $ACCEPT_ALL" -w '%header{oci-namespace}' "http://$P/v2/lab/small/manifests/v1")
check_eq "proxy answers with OCI-Namespace: upstream.test (default upstream)" "upstream.test" "$ns"

check "skopeo copy --all docker://PROXY/lab/multi:v1 -> oci: (direct)" \
  sk copy -q --all --src-tls-verify=false "docker://$P/lab/multi:v1" "oci:$T/direct-multi:x"
top=$(jq -r '.manifests[0].digest' "$T/direct-multi/index.json" 2>/dev/null)
check_eq "copied lab/multi:v1 index digest equals upstream's" "${UPD[lab/multi:v1]}" "$top"
archs=$(jq -r '.manifests[].platform.architecture' "$T/direct-multi/blobs/sha256/${top#sha256:}" 2>/dev/null | sort | tr '\n' ' ')
check_eq "copy --all brought both platforms" "amd64 arm64 " "$archs"
nman=0
for d in $(jq -r '.manifests[].digest' "$T/direct-multi/blobs/sha256/${top#sha256:}" 2>/dev/null); do
  [[ -f $T/direct-multi/blobs/sha256/${d#sha256:} ]] && nman=$((nman + 1))
done
check_eq "both platform manifests are in the copied layout" 2 "$nman"
check "blobs of the copied lab/multi:v1 are intact" layout_ok "$T/direct-multi"

# by digest, through the proxy
d=${UPD[lab/small:v1]}
check "skopeo copy docker://PROXY/lab/small@$d (by digest)" \
  sk copy -q --src-tls-verify=false "docker://$P/lab/small@$d" "oci:$T/direct-bydigest:x"

# explicit path prefix, as the mirror uses it
d=$(manifest_digest "$P" upstream.test/lab/small v1 2>&1)
check_eq "GET /v2/upstream.test/lab/small/manifests/v1 (path prefix) digest equals upstream's" "${UPD[lab/small:v1]}" "$d"
d=$(manifest_digest "$P" lab/small v1 "?ns=upstream.test" 2>&1)
check_eq "GET /v2/lab/small/manifests/v1?ns=upstream.test digest equals upstream's" "${UPD[lab/small:v1]}" "$d"

# ---------------------------------------------------------------- 2. registries.conf mirror
# upstream.test resolves to 127.0.0.1 where port 443 is closed: only the mirror can serve.
hosts_pin upstream.test
MIRROR_CONF=$T/registries-mirror.conf
cat >"$MIRROR_CONF" <<EOF
unqualified-search-registries = []
short-name-mode = "disabled"

[[registry]]
prefix = "upstream.test"
location = "upstream.test"
[[registry.mirror]]
location = "$P/upstream.test"
insecure = true
EOF
SKM=(timeout 600 skopeo --registries-conf "$MIRROR_CONF")
for ref in lab/small:v1 lab/small:v2s2 lab/big:v1 library/hello:latest; do
  n=${ref//[\/:]/-}
  check "skopeo copy docker://upstream.test/$ref via the mirror" \
    "${SKM[@]}" copy -q "docker://upstream.test/$ref" "oci:$T/mirror-$n:x"
  d=$(raw_digest --registries-conf "$MIRROR_CONF" inspect --raw "docker://upstream.test/$ref" 2>&1)
  check_eq "skopeo inspect --raw digest of upstream.test/$ref via the mirror equals upstream's" "${UPD[$ref]}" "$d"
done
check "skopeo copy --all docker://upstream.test/lab/multi:v1 via the mirror" \
  "${SKM[@]}" copy -q --all "docker://upstream.test/lab/multi:v1" "oci:$T/mirror-multi:x"
top=$(jq -r '.manifests[0].digest' "$T/mirror-multi/index.json" 2>/dev/null)
check_eq "mirror copy of lab/multi:v1 keeps the index digest" "${UPD[lab/multi:v1]}" "$top"
archs=$(jq -r '.manifests[].platform.architecture' "$T/mirror-multi/blobs/sha256/${top#sha256:}" 2>/dev/null | sort | tr '\n' ' ')
check_eq "mirror copy --all brought both platforms" "amd64 arm64 " "$archs"
d=${UPD[lab/big:v1]}
check "skopeo copy docker://upstream.test/lab/big@$d (by digest) via the mirror" \
  "${SKM[@]}" copy -q "docker://upstream.test/lab/big@$d" "oci:$T/mirror-bydigest:x"
check "skopeo inspect --no-tags docker://upstream.test/lab/small:v1 via the mirror" \
  "${SKM[@]}" inspect --no-tags "docker://upstream.test/lab/small:v1"
# negative control: without the mirror, upstream.test cannot be reached (so the above came via the proxy)
if sk copy -q "docker://upstream.test/lab/small:v1" "oci:$T/nomirror:x" >"$T/last.out" 2>&1; then
  not_ok "without the mirror upstream.test/lab/small:v1 is unreachable (control)" "it was pulled: the mirror checks prove nothing"
else
  ok "without the mirror upstream.test/lab/small:v1 is unreachable (control)"
fi

finish
