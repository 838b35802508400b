#!/usr/bin/env bash
# podman pulls upstream.test/... through the proxy configured as a registries.conf mirror with
# a path prefix (PROXY/upstream.test). upstream.test resolves to 127.0.0.1 where port 443 is
# closed, so only the mirror can serve. Private podman root/runroot, vfs storage.
source "$(dirname "$0")/lib.sh"
suite_init podman
need podman

start_upstream upstream || { not_ok "upstream registry starts" "see $T/upstream.log"; finish; }
UP=${ADDR[upstream]}
check "test images pushed into the upstream" push_images "$UP" || finish
start_proxy proxy --upstream "upstream.test=http://$UP" ||
  { not_ok "proxy starts and answers GET /v2/" "$(tail -3 "$T/proxy.log")"; finish; }
ok "proxy starts and answers GET /v2/"
P=${ADDR[proxy]}
hosts_pin upstream.test

export CONTAINERS_REGISTRIES_CONF=$T/registries-mirror.conf
cat >"$CONTAINERS_REGISTRIES_CONF" <<EOF
unqualified-search-registries = []
short-name-mode = "disabled"

[[registry]]
prefix = "upstream.test"
location = "upstream.test"
[[registry.mirror]]
location = "$P/upstream.test"
insecure = true
EOF
# keep podman away from the host's configuration and storage
export CONTAINERS_STORAGE_CONF=$T/storage.conf
printf '[storage]\ndriver = "vfs"\nrunroot = "%s"\ngraphroot = "%s"\n' "$T/podman-run" "$T/podman-root" >"$CONTAINERS_STORAGE_CONF"
export XDG_RUNTIME_DIR=$T/xdg HOME=$T/home
mkdir -p "$XDG_RUNTIME_DIR" "$HOME"
chmod 700 "$XDG_RUNTIME_DIR"
PM=(timeout 600 podman --root "$T/podman-root" --runroot "$T/podman-run" --storage-driver vfs
    --cgroup-manager cgroupfs --events-backend none --tmpdir "$T/podman-tmp")

repo_digests() { "${PM[@]}" image inspect --format '{{range .RepoDigests}}{{println .}}{{end}}' "$1" 2>&1 | grep -v '^$'; }
ulog=$T/upstream.log
for ref in lab/small:v1 lab/small:v2s2 lab/big:v1; do
  u0=$(upstream_requests "$ulog")
  check "podman pull upstream.test/$ref via the mirror" "${PM[@]}" pull -q "upstream.test/$ref"
  u1=$(upstream_requests "$ulog")
  check_true "pull of $ref reached the upstream through the proxy" "no new upstream requests ($u0 -> $u1)" \
    test "$u1" -gt "$u0"
  want=$(manifest_digest "$UP" "${ref%:*}" "${ref#*:}")
  got=$(repo_digests "upstream.test/$ref")
  check_true "podman records upstream.test/${ref%:*}@<upstream's digest> for $ref" "want @$want, have: $got" \
    grep -qx "upstream.test/${ref%:*}@$want" <<<"$got"
done

check "podman pull --arch arm64 upstream.test/lab/multi:v1 via the mirror" \
  "${PM[@]}" pull -q --arch arm64 upstream.test/lab/multi:v1
arch=$("${PM[@]}" image inspect --format '{{.Architecture}}' upstream.test/lab/multi:v1 2>&1)
check_eq "pulled lab/multi:v1 is the arm64 variant" arm64 "$arch"
# the arm64 manifest digest from the upstream's index
want=$(curl -fsS --max-time 30 -H "Accept: $ACCEPT_ALL" "http://$UP/v2/lab/multi/manifests/v1" |
  jq -r '.manifests[] | select(.platform.architecture=="arm64") | .digest')
got=$(repo_digests upstream.test/lab/multi:v1)
idx=$(manifest_digest "$UP" lab/multi v1)
# podman records the index digest and/or the instance digest; they must be the upstream's
if grep -qxE "upstream.test/lab/multi@($want|$idx)" <<<"$got" && ! grep -vqxE "upstream.test/lab/multi@($want|$idx)" <<<"$got"; then
  ok "pulled lab/multi:v1 digests are the upstream's"
else not_ok "pulled lab/multi:v1 digests are the upstream's" "have: $got; want $want (arm64) or $idx (index)"; fi

check_true "the proxy's log shows the mirror requests (/v2/upstream.test/lab/...)" "no such path in proxy.log" \
  grep -q '/v2/upstream\.test/lab/' "$T/proxy.log"

# a second pull of an image already in local storage only re-checks the manifest: must still work
check "podman pull upstream.test/lab/small:v1 again" "${PM[@]}" pull -q upstream.test/lab/small:v1

# negative control: without the mirror, upstream.test is unreachable
printf 'unqualified-search-registries = []\nshort-name-mode = "disabled"\n' >"$T/registries-none.conf"
if CONTAINERS_REGISTRIES_CONF=$T/registries-none.conf \
   "${PM[@]}" pull -q --policy always upstream.test/lab/small:v2s2 >"$T/last.out" 2>&1; then
  not_ok "without the mirror upstream.test is unreachable (control)" "the pull succeeded: the mirror checks prove nothing"
else
  ok "without the mirror upstream.test is unreachable (control)"
fi

"${PM[@]}" rmi -a -f >/dev/null 2>&1 || true
finish
