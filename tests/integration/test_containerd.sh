#!/usr/bin/env bash
# containerd 1.6 pulls upstream.test/... through the proxy configured as a hosts.toml mirror.
# containerd sends the repository path with ?ns=upstream.test. The proxy's DEFAULT upstream is a
# different, empty registry (decoy.test), so a successful pull proves routing by ns=.
source "$(dirname "$0")/lib.sh"
suite_init containerd
need containerd ctr

start_upstream upstream || { not_ok "upstream registry starts" "see $T/upstream.log"; finish; }
start_upstream decoy || { not_ok "decoy registry starts" "see $T/decoy.log"; finish; }
UP=${ADDR[upstream]} DECOY=${ADDR[decoy]}
check "test images pushed into the upstream" push_images "$UP" || finish
start_proxy proxy --upstream "decoy.test=http://$DECOY" --upstream "upstream.test=http://$UP" \
  --default-upstream decoy.test ||
  { not_ok "proxy starts and answers GET /v2/" "$(tail -3 "$T/proxy.log")"; finish; }
ok "proxy starts and answers GET /v2/"
P=${ADDR[proxy]}
hosts_pin upstream.test

# routing control: without ns= the default (empty decoy) upstream answers, so no manifest
code=$(http_status GET "http://$P/v2/lab/small/manifests/v1" -H "Accept: $ACCEPT_ALL")
check_eq "without ns= the proxy routes to the (empty) default upstream: 404" 404 "$code"
code=$(http_status GET "http://$P/v2/lab/small/manifests/v1?ns=upstream.test" -H "Accept: $ACCEPT_ALL")
check_eq "with ?ns=upstream.test the manifest is found: 200" 200 "$code"

d0=$(upstream_requests "$T/decoy.log")

C=$T/containerd
SOCK=$C/containerd.sock
mkdir -p "$C/root" "$C/state" "$T/certs.d/upstream.test"
cat >"$C/config.toml" <<EOF
version = 2
root = "$C/root"
state = "$C/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$SOCK"
[ttrpc]
  address = "$SOCK.ttrpc"
[debug]
  address = "$C/debug.sock"
  level = "info"
[metrics]
  address = ""
EOF
cat >"$T/certs.d/upstream.test/hosts.toml" <<EOF
server = "https://upstream.test"

[host."http://$P"]
  capabilities = ["pull", "resolve"]
EOF
start_bg containerd containerd --config "$C/config.toml"
if wait_sock "$SOCK" 30 && for i in $(seq 50); do ctr --address "$SOCK" version >/dev/null 2>&1 && break; sleep 0.2; done &&
   ctr --address "$SOCK" version >/dev/null 2>&1; then
  ok "containerd starts"
else
  not_ok "containerd starts" "$(tail -3 "$T/containerd.log")"; finish
fi
CTR=(timeout 600 ctr --address "$SOCK" --namespace test)

ulog=$T/upstream.log dlog=$T/decoy.log
pull() { "${CTR[@]}" image pull --hosts-dir "$T/certs.d" "$@"; }
for ref in lab/small:v1 lab/big:v1; do
  u0=$(upstream_requests "$ulog")
  check "ctr image pull --hosts-dir upstream.test/$ref" pull "upstream.test/$ref"
  u1=$(upstream_requests "$ulog")
  check_true "pull of $ref reached upstream.test's registry through the proxy" "no new upstream requests ($u0 -> $u1)" \
    test "$u1" -gt "$u0"
  want=$(manifest_digest "$UP" "${ref%:*}" "${ref#*:}")
  got=$("${CTR[@]}" image ls 2>/dev/null | awk -v r="upstream.test/$ref" '$1==r{print $3}')
  check_eq "containerd image upstream.test/$ref has the upstream's digest" "$want" "$got"
done
check "ctr image pull --hosts-dir --all-platforms upstream.test/lab/multi:v1" pull --all-platforms upstream.test/lab/multi:v1
want=$(manifest_digest "$UP" lab/multi v1)
got=$("${CTR[@]}" image ls 2>/dev/null | awk '$1=="upstream.test/lab/multi:v1"{print $3}')
check_eq "containerd image upstream.test/lab/multi:v1 has the upstream's index digest" "$want" "$got"
plats=$("${CTR[@]}" image ls 2>/dev/null | awk '$1=="upstream.test/lab/multi:v1"{print $6}')
check_true "containerd lists both platforms for lab/multi:v1" "platforms: '$plats'" \
  bash -c '[[ $1 == *linux/amd64* && $1 == *linux/arm64* ]]' _ "$plats"
# every platform's content is really in the content store
absent=""
for d in $(curl -fsS --max-time 30 -H "Accept: $ACCEPT_ALL" "http://$UP/v2/lab/multi/manifests/v1" | jq -r '.manifests[].digest'); do
  for b in "$d" $(curl -fsS --max-time 30 -H "Accept: $ACCEPT_ALL" "http://$UP/v2/lab/multi/manifests/$d" | jq -r '.config.digest, .layers[].digest'); do
    "${CTR[@]}" content get "$b" 2>/dev/null | sha256sum | grep -q "^${b#sha256:} " || absent+=" $b"
  done
done
check_eq "content of both platforms is in containerd's store and intact" "" "$absent"
d1=$(upstream_requests "$dlog")
check_eq "the decoy (default upstream) got no requests from the ns= pulls" "$d0" "$d1"

# negative control: without --hosts-dir, upstream.test (https on 127.0.0.1:443) is unreachable
"${CTR[@]}" image rm upstream.test/lab/small:v1 >/dev/null 2>&1 || true
if "${CTR[@]}" image pull upstream.test/lab/small:v1 >"$T/last.out" 2>&1; then
  not_ok "without the hosts.toml mirror upstream.test is unreachable (control)" "the pull succeeded"
else
  ok "without the hosts.toml mirror upstream.test is unreachable (control)"
fi

"${CTR[@]}" image rm $("${CTR[@]}" image ls -q 2>/dev/null) >/dev/null 2>&1 || true
finish
