#!/usr/bin/env bash
# dockerd 20.10 with "registry-mirrors": ["http://PROXY"] pulls docker.io names through the proxy
# (docker.io=upstream registry). Docker Hub names are pinned to 127.0.0.1 (port 443 closed) so a
# fallback past the mirror cannot succeed and no traffic leaves the machine.
source "$(dirname "$0")/lib.sh"
suite_init dockerd
need_dockerd

start_upstream upstream || { not_ok "upstream registry starts" "see $T/upstream.log"; finish; }
UP=${ADDR[upstream]}
check "test images pushed into the upstream" push_images "$UP" || finish
start_proxy proxy --upstream "docker.io=http://$UP" ||
  { not_ok "proxy starts and answers GET /v2/" "$(tail -3 "$T/proxy.log")"; finish; }
ok "proxy starts and answers GET /v2/"
P=${ADDR[proxy]}
if start_dockerd "http://$P" "$P"; then ok "dockerd starts"; else not_ok "dockerd starts" "$(tail -3 "$T/dockerd.log")"; finish; fi
mirrors=$("${DK[@]}" info --format '{{.RegistryConfig.Mirrors}}' 2>&1)
check_eq "dockerd uses the proxy as registry mirror" "[http://$P/]" "$mirrors"

want=$(manifest_digest "$UP" library/hello latest)
u0=$(upstream_blob_gets "$T/upstream.log")
check "docker pull hello (docker.io/library/hello:latest via the mirror)" "${DK[@]}" pull -q hello
u1=$(upstream_blob_gets "$T/upstream.log")
check_true "the pull fetched blobs from the upstream through the proxy" "no new upstream blob GETs ($u0 -> $u1)" \
  test "$u1" -gt "$u0"
got=$("${DK[@]}" image inspect --format '{{range .RepoDigests}}{{println .}}{{end}}' hello 2>&1 | grep -v '^$')
check_eq "docker image hello has the upstream's manifest digest" "hello@$want" "$got"
id=$("${DK[@]}" image inspect --format '{{.Id}}' hello 2>&1)
cfg=$(curl -fsS --max-time 30 -H "Accept: $ACCEPT_ALL" "http://$UP/v2/library/hello/manifests/latest" | jq -r .config.digest)
check_eq "docker image hello has the upstream's config (image id)" "$cfg" "$id"

check "docker pull library/hello:latest again" "${DK[@]}" pull -q library/hello:latest
check "docker pull docker.io/library/hello@$want (by digest)" "${DK[@]}" pull -q "docker.io/library/hello@$want"

# a name the upstream does not have: the mirror says 404 and the Hub fallback is unreachable
if "${DK[@]}" pull -q docker.io/library/no-such-image-portcullis:latest >"$T/last.out" 2>&1; then
  not_ok "docker pull of an unknown image fails" "it succeeded"
else
  ok "docker pull of an unknown image fails"
fi

"${DK[@]}" rmi -f hello "docker.io/library/hello@$want" >/dev/null 2>&1 || true
finish
