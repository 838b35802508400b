#!/usr/bin/env bash
# TLS on both sides of the proxy, with a throwaway test CA made in the suite's temp dir:
#   1. the proxy serves HTTPS (--tls-cert/--tls-key): curl with the CA gets 200, without it
#      curl fails verification (so it really is TLS with our certificate);
#   2. dockerd 20.10 pulls docker.io names through "registry-mirrors": ["https://127.0.0.1:PORT"]
#      with no insecure-registries; the CA goes to /etc/docker/certs.d/127.0.0.1:PORT/ca.crt
#      (dockerd has no option to read certs.d from elsewhere; CertsDir() is fixed unless
#      rootless). That folder is created for the run and removed in the EXIT trap.
#      NOTE: dockerd always counts 127.0.0.0/8 as an insecure registry range
#      (registry.LoadInsecureRegistries appends it), and for insecure hosts it sets
#      InsecureSkipVerify and does not read certs.d. So this part proves dockerd talks TLS to
#      the proxy (the proxy only speaks HTTPS), not that dockerd verified the certificate;
#      the verification proof is the curl check of part 1.
#   3. an https upstream (docker-registry with TLS, cert from the same CA): a proxy with
#      --upstream-ca pulls through it; a proxy without it fails with 503 UPSTREAM_UNAVAILABLE
#      that names the TLS problem (so upstream certificates are verified);
#   4. bad TLS flags exit 2 with a message.
source "$(dirname "$0")/lib.sh"
suite_init tls
need openssl
need_dockerd

# ---------------------------------------------------------------- extra cleanup
# /etc/docker/certs.d/127.0.0.1:PORT (and certs.d itself when this run created it) go away
# after the processes are stopped; lib.sh's _cleanup is wrapped, not replaced.
CERTS_D=/etc/docker/certs.d
MADE_CERTS_D=0
MADE_HOST_DIR=""
eval "$(declare -f _cleanup | sed '1s/^_cleanup/_lib_cleanup/')"
_cleanup() {
  _lib_cleanup
  if [[ -n $MADE_HOST_DIR && -d $MADE_HOST_DIR ]]; then
    rm -f -- "$MADE_HOST_DIR/ca.crt"
    rmdir -- "$MADE_HOST_DIR" 2>/dev/null || log "could not remove $MADE_HOST_DIR"
  fi
  if ((MADE_CERTS_D)) && [[ -d $CERTS_D ]]; then
    rmdir -- "$CERTS_D" 2>/dev/null || log "left $CERTS_D (not empty)"
  fi
}

# ---------------------------------------------------------------- 0. binary + test CA
BIN=$T/portcullis          # a private copy: others rebuild build/ while we run
cp -- "$PORTCULLIS_BIN" "$BIN" && chmod 755 "$BIN" || { not_ok "copy the portcullis binary" "cp failed"; finish; }
PORTCULLIS_BIN=$BIN        # start_proxy uses it

CA=$T/ca.pem
# mk_cert NAME : server certificate $T/NAME.pem / $T/NAME.key for 127.0.0.1 + localhost
mk_cert() {
  local n=$1
  openssl req -newkey rsa:2048 -nodes -keyout "$T/$n.key" -out "$T/$n.csr" -subj "/CN=127.0.0.1" &&
  printf '%s\n' 'subjectAltName=IP:127.0.0.1,DNS:localhost' 'basicConstraints=CA:FALSE' \
    'keyUsage=critical,digitalSignature,keyEncipherment' 'extendedKeyUsage=serverAuth' >"$T/$n.ext" &&
  openssl x509 -req -in "$T/$n.csr" -CA "$CA" -CAkey "$T/ca.key" -CAcreateserial -days 2 \
    -out "$T/$n.pem" -extfile "$T/$n.ext"
}
mk_ca() {
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$T/ca.key" -out "$CA" -days 2 \
    -subj "/CN=Portcullis throwaway test CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" &&
  mk_cert proxy-srv && mk_cert upstream-srv &&
  openssl verify -CAfile "$CA" "$T/proxy-srv.pem" "$T/upstream-srv.pem"
}
check "throwaway test CA and server certificates (SAN IP:127.0.0.1, DNS:localhost)" mk_ca || finish
sans=$(openssl x509 -in "$T/proxy-srv.pem" -noout -ext subjectAltName 2>/dev/null | tail -1 | tr -d ' ' | tr ',' '\n' | sort | tr '\n' ' ')
check_eq "server certificate carries the SANs" "DNS:localhost IPAddress:127.0.0.1 " "$sans"

# wait_https URL SECONDS NAME : until URL answers over TLS verified with the test CA
wait_https() {
  local url=$1 secs=$2 name=$3 i
  for i in $(seq $((secs * 5))); do
    curl -s -o /dev/null --max-time 2 --cacert "$CA" "$url" && return 0
    is_running "$name" || { log "$name exited while waiting for $url"; return 1; }
    sleep 0.2
  done
  log "timeout waiting for $url"; return 1
}

# ---------------------------------------------------------------- 1. proxy serves HTTPS
start_upstream upstream || { not_ok "upstream registry starts" "see $T/upstream.log"; finish; }
UP=${ADDR[upstream]}
check "test images pushed into the upstream" push_images "$UP" || finish

PORT=$(free_port) || { not_ok "free port" "none"; finish; }
P=127.0.0.1:$PORT
ADDR[proxy]=$P
mkdir -p "$T/proxy-data"
PROXY_ARGS=(serve --listen "$P" --data-dir "$T/proxy-data" --admin-listen off
            --tls-cert "$T/proxy-srv.pem" --tls-key "$T/proxy-srv.key" --upstream "docker.io=http://$UP")
echo "+ $BIN ${PROXY_ARGS[*]}" >>"$T/proxy.log"
start_bg proxy "$BIN" "${PROXY_ARGS[@]}"
if wait_https "https://$P/v2/" 30 proxy; then ok "TLS proxy starts (--tls-cert/--tls-key)"
else not_ok "TLS proxy starts (--tls-cert/--tls-key)" "$(tail -3 "$T/proxy.log")"; finish; fi

code=$(http_status GET "https://$P/v2/" --cacert "$CA")
check_eq "curl --cacert CA https://PROXY/v2/ -> 200" 200 "$code"
curl -sS --max-time 10 -o /dev/null "https://$P/v2/" >"$T/noca.out" 2>&1
rc=$?
check_eq "curl https://PROXY/v2/ without the CA fails certificate verification (curl exit 60)" 60 "$rc"
curl -sS --max-time 10 -o /dev/null "http://$P/v2/" >/dev/null 2>&1
rc=$?
check_true "plain http:// to the TLS port gets no HTTP answer" "curl exit $rc" test "$rc" -ne 0
check_true "proxy startup log says tls:true" "no '\"tls\":true' in proxy.log" grep -q '"tls":true' "$T/proxy.log"
want=$(manifest_digest "$UP" library/hello latest) || { not_ok "upstream digest of library/hello:latest" "$want"; finish; }
got=$(curl -sS --max-time 60 --cacert "$CA" -H "Accept: $ACCEPT_ALL" "https://$P/v2/library/hello/manifests/latest" | sha256sum | cut -d' ' -f1)
check_eq "GET manifest library/hello:latest over TLS = upstream's digest" "$want" "sha256:$got"

# ---------------------------------------------------------------- 2. dockerd, https mirror
[[ -d $CERTS_D ]] || { mkdir -p "$CERTS_D" && MADE_CERTS_D=1; }
HOST_DIR=$CERTS_D/127.0.0.1:$PORT
if [[ -e $HOST_DIR ]]; then
  not_ok "create $HOST_DIR" "it exists already (not ours, left alone)"; finish
fi
mkdir "$HOST_DIR" && MADE_HOST_DIR=$HOST_DIR && cp "$CA" "$HOST_DIR/ca.crt" ||
  { not_ok "create $HOST_DIR/ca.crt" "cannot write (the suites need root)"; finish; }
ok "CA installed as $HOST_DIR/ca.crt (removed at exit)"

if start_dockerd "https://$P"; then ok "dockerd starts"; else not_ok "dockerd starts" "$(tail -3 "$T/dockerd.log")"; finish; fi
mirrors=$("${DK[@]}" info --format '{{.RegistryConfig.Mirrors}}' 2>&1)
check_eq "dockerd uses https://PROXY as registry mirror" "[https://$P/]" "$mirrors"
insecure=$("${DK[@]}" info --format '{{range .RegistryConfig.IndexConfigs}}{{if not .Secure}}{{.Name}} {{end}}{{end}}' 2>&1)
check_eq "no insecure-registries entries configured" "" "$insecure"
cidrs=$("${DK[@]}" info --format '{{json .RegistryConfig.InsecureRegistryCIDRs}}' 2>&1)
log "dockerd InsecureRegistryCIDRs = $cidrs (127.0.0.0/8 is built in: dockerd skips certificate verification for loopback hosts)"

a0=$(grep -c '"path":"/v2/library/hello/manifests/latest","status":200' "$T/proxy.log")
u0=$(upstream_blob_gets "$T/upstream.log")
check "docker pull hello through the https mirror" "${DK[@]}" pull -q hello
a1=$(grep -c '"path":"/v2/library/hello/manifests/latest","status":200' "$T/proxy.log")
u1=$(upstream_blob_gets "$T/upstream.log")
check_true "TLS proxy access log shows the manifest GET from dockerd" "no new 200 manifest lines ($a0 -> $a1)" \
  test "$a1" -gt "$a0"
blobs=$(grep '"msg":"access"' "$T/proxy.log" | grep -cE '"path":"/v2/library/hello/blobs/sha256:[0-9a-f]{64}","status":200')
check_true "TLS proxy access log shows blob GETs (200)" "no 200 blob GETs in proxy.log" test "$blobs" -gt 0
check_true "the pull fetched blobs from the upstream through the proxy" "no new upstream blob GETs ($u0 -> $u1)" \
  test "$u1" -gt "$u0"
got=$("${DK[@]}" image inspect --format '{{range .RepoDigests}}{{println .}}{{end}}' hello 2>&1 | grep -v '^$')
check_eq "docker image hello has the upstream's manifest digest" "hello@$want" "$got"
id=$("${DK[@]}" image inspect --format '{{.Id}}' hello 2>&1)
cfg=$(curl -fsS --max-time 30 -H "Accept: $ACCEPT_ALL" "http://$UP/v2/library/hello/manifests/latest" | jq -r .config.digest)
check_eq "docker image hello has the upstream's config (image id)" "$cfg" "$id"
"${DK[@]}" rmi -f hello >/dev/null 2>&1 || true
stop_bg dockerd

# ---------------------------------------------------------------- 3. https upstream
P2=$(free_port) || { not_ok "free port" "none"; finish; }
mkdir -p "$T/uptls-data"
cat >"$T/uptls.yml" <<YML
version: 0.1
log:
  level: info
  fields: {service: uptls}
storage:
  filesystem: {rootdirectory: $T/uptls-data}
  delete: {enabled: true}
  maintenance:
    uploadpurging: {enabled: false}
http:
  addr: 127.0.0.1:$P2
  tls:
    certificate: $T/upstream-srv.pem
    key: $T/upstream-srv.key
YML
ADDR[uptls]=127.0.0.1:$P2
start_bg uptls docker-registry serve "$T/uptls.yml"
if wait_https "https://127.0.0.1:$P2/v2/" 30 uptls; then ok "docker-registry with TLS starts (cert from the test CA)"
else not_ok "docker-registry with TLS starts (cert from the test CA)" "$(tail -3 "$T/uptls.log")"; finish; fi
mkdir -p "$T/skopeo-certs" && cp "$CA" "$T/skopeo-certs/ca.crt"
build_images || { not_ok "test images built" "see $T/build_images.log"; finish; }
check "lab/small:v1 pushed into the TLS upstream (verified with the CA)" \
  sk copy -q --dest-cert-dir "$T/skopeo-certs" "oci:$IMG_OCI:small" "docker://127.0.0.1:$P2/lab/small:v1" || finish
want2=$(curl -sS --max-time 30 --cacert "$CA" -H "Accept: $ACCEPT_ALL" "https://127.0.0.1:$P2/v2/lab/small/manifests/v1" | sha256sum | cut -d' ' -f1)
want2=sha256:$want2

if start_proxy pca --admin-listen off --upstream "up.tls=https://127.0.0.1:$P2" --upstream-ca "up.tls=$CA"; then
  ok "proxy with --upstream-ca up.tls=CA starts"
else
  not_ok "proxy with --upstream-ca up.tls=CA starts" "$(tail -3 "$T/pca.log")"; finish
fi
PCA=${ADDR[pca]}
g0=$(upstream_blob_gets "$T/uptls.log")
check "skopeo copy docker://PROXY/up.tls/lab/small:v1 -> oci: (https upstream, --upstream-ca)" \
  sk copy -q --src-tls-verify=false "docker://$PCA/up.tls/lab/small:v1" "oci:$T/via-ca:x"
top=$(jq -r '.manifests[0].digest' "$T/via-ca/index.json" 2>/dev/null)
check_eq "copied lab/small:v1 has the TLS upstream's manifest digest" "$want2" "$top"
g1=$(upstream_blob_gets "$T/uptls.log")
check_true "the proxy fetched blobs from the TLS upstream" "no new blob GETs in uptls.log ($g0 -> $g1)" test "$g1" -gt "$g0"
d=$(manifest_digest "$PCA" up.tls/lab/small v1 2>&1)
check_eq "GET manifest up.tls/lab/small:v1 via proxy = upstream's digest" "$want2" "$d"

if start_proxy pnoca --admin-listen off --upstream "up.tls=https://127.0.0.1:$P2"; then
  ok "proxy without --upstream-ca starts"
else
  not_ok "proxy without --upstream-ca starts" "$(tail -3 "$T/pnoca.log")"; finish
fi
PN=${ADDR[pnoca]}
code=$(curl -sS --max-time 60 -o "$T/noca-body.json" -w '%{http_code}' -H "Accept: $ACCEPT_ALL" \
       "http://$PN/v2/up.tls/lab/small/manifests/v1" 2>&1)
check_eq "without --upstream-ca: manifest GET -> 503" 503 "$code"
ecode=$(jq -r '.errors[0].code' "$T/noca-body.json" 2>/dev/null)
check_eq "without --upstream-ca: error code UPSTREAM_UNAVAILABLE" UPSTREAM_UNAVAILABLE "$ecode"
# The words oci/http_client.cc uses for a failed certificate check (the upstream's NAME is
# "up.tls", so a bare "tls" would match every log line about it).
TLS_MSG='TLS certificate verification failed'
msg=$(jq -r '.errors[0].message // ""' "$T/noca-body.json" 2>/dev/null)
check_true "without --upstream-ca: error JSON message says '$TLS_MSG'" "message: '$msg'" \
  grep -qF "$TLS_MSG" <<<"$msg"
# the access line of that request (the first 503 for that path) carries the same reason
line=$(jq -cR 'fromjson? | select(.msg == "access" and .path == "/v2/up.tls/lab/small/manifests/v1" and .status == 503)' \
       "$T/pnoca.log" 2>/dev/null | head -1)
check_true "without --upstream-ca: the request's access log line says '$TLS_MSG'" "line: '${line:-none}'" \
  bash -c 'jq -e --arg m "$1" ".error_message | contains(\$m)" <<<"$2" >/dev/null' _ "$TLS_MSG" "$line"
if sk copy -q --src-tls-verify=false "docker://$PN/up.tls/lab/small:v1" "oci:$T/via-noca:x" >"$T/last.out" 2>&1; then
  not_ok "without --upstream-ca: skopeo copy through the proxy fails" "it succeeded"
else
  ok "without --upstream-ca: skopeo copy through the proxy fails"
fi
# Blobs come through their own transport (Beast, oci/stream_get.h): it must check the
# certificate as well. Without a policy a blob GET by digest goes straight upstream.
blob=$(ls -S "$T/via-ca/blobs/sha256" 2>/dev/null | head -1)
code=$(curl -sS --max-time 60 -o "$T/noca-blob.json" -w '%{http_code}' \
       "http://$PN/v2/up.tls/lab/small/blobs/sha256:$blob" 2>&1)
check_eq "without --upstream-ca: blob GET (sha256:${blob:0:12}) -> 503" 503 "$code"
msg=$(jq -r '.errors[0].message // ""' "$T/noca-blob.json" 2>/dev/null)
check_true "without --upstream-ca: the blob GET's error says '$TLS_MSG'" "message: '$msg'" \
  grep -qF "$TLS_MSG" <<<"$msg"

# ---------------------------------------------------------------- 4. bad TLS flags
# bad_flags NAME ARGS... : runs serve (bounded) and records exit status and output
bad_flags() {
  local n=$1; shift
  local port; port=$(free_port) || return 1
  mkdir -p "$T/$n-data"
  timeout 20 "$BIN" serve --listen "127.0.0.1:$port" --data-dir "$T/$n-data" --admin-listen off \
    --upstream "docker.io=http://$UP" "$@" >"$T/$n.out" 2>&1
  echo $?
}
rc=$(bad_flags badkey --tls-cert "$T/proxy-srv.pem")
check_eq "--tls-cert without --tls-key exits 2" 2 "$rc"
msg=$(grep -v '^[[:space:]]*$' "$T/badkey.out" | head -2 | tr '\n' ' ')
check_true "--tls-cert without --tls-key prints a message naming --tls-key" "output: '$msg'" \
  grep -q -- 'tls-key\|tls_key' "$T/badkey.out"
rc=$(bad_flags badcert --tls-key "$T/proxy-srv.key")
check_eq "--tls-key without --tls-cert exits 2" 2 "$rc"
check_true "--tls-key without --tls-cert prints a message naming --tls-cert" "output: '$(head -2 "$T/badcert.out" | tr '\n' ' ')'" \
  grep -q -- 'tls-cert\|tls_cert' "$T/badcert.out"
rc=$(bad_flags missing --tls-cert "$T/no-such-cert.pem" --tls-key "$T/proxy-srv.key")
check_eq "missing --tls-cert file exits 2" 2 "$rc"
check_true "missing --tls-cert file: message names the file" "output: '$(head -2 "$T/missing.out" | tr '\n' ' ')'" \
  grep -q -- 'no-such-cert.pem' "$T/missing.out"
rc=$(bad_flags missingkey --tls-cert "$T/proxy-srv.pem" --tls-key "$T/no-such-key.pem")
check_eq "missing --tls-key file exits 2" 2 "$rc"
check_true "missing --tls-key file: message names the file" "output: '$(head -2 "$T/missingkey.out" | tr '\n' ' ')'" \
  grep -q -- 'no-such-key.pem' "$T/missingkey.out"
rc=$(bad_flags mismatch --tls-cert "$T/proxy-srv.pem" --tls-key "$T/upstream-srv.key")
check_eq "certificate and key that do not match exit 2" 2 "$rc"
log "bad-flag messages: $(for f in badkey badcert missing missingkey mismatch; do printf '[%s] %s ' "$f" "$(grep -v 'no trust policy' "$T/$f.out" | head -1 | cut -c1-200)"; done)"

finish
