#!/usr/bin/env bash
# The proxy's HTTP surface with curl: status codes and OCI error codes for bad names, tags (404),
# digests, path traversal, write methods, unknown upstreams/tags/blobs; HEAD headers, Range,
# tags/list pagination, and refusal of an upstream manifest larger than 4 MiB.
source "$(dirname "$0")/lib.sh"
suite_init bad_input

start_upstream upstream || { not_ok "upstream registry starts" "see $T/upstream.log"; finish; }
UP=${ADDR[upstream]}
check "test images pushed into the upstream" push_images "$UP" || finish
SMALLD=$(manifest_digest "$UP" lab/small v1)

# A manifest over 4 MiB: distribution 2.8 refuses to store (PUT: "http: request body too large")
# and to serve (GET: "storage: read exceeds limit") one, so a forwarding helper serves it.
"$PY" - "$SMALLD" >"$T/huge.json" <<'PY'
import json, sys
print(json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
  "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sys.argv[1],
                 "size": 0, "platform": {"architecture": "amd64", "os": "linux"}}],
  "annotations": {"org.example.padding": "x" * (5 * 1024 * 1024)}}), end="")
PY
HUGED=sha256:$(sha256sum <"$T/huge.json" | cut -d' ' -f1)
code=$(curl -sS --max-time 60 -o "$T/huge-put.out" -w '%{http_code}' -X PUT \
  -H 'Content-Type: application/vnd.oci.image.index.v1+json' --data-binary "@$T/huge.json" \
  "http://$UP/v2/lab/huge/manifests/v1")
log "PUT of the 5 MiB index into distribution: HTTP $code $(head -c 150 "$T/huge-put.out")"
HP=$(free_port)
start_bg huge-upstream "$PY" "$IT_DIR/lying_upstream.py" --honest --paginate-tags --port "$HP" --upstream "http://$UP" \
  --manifest "lab/huge:v1=$T/huge.json"
wait_http "http://127.0.0.1:$HP/v2/" 20 huge-upstream ||
  { not_ok "helper upstream with the huge manifest starts" "$(tail -3 "$T/huge-upstream.log")"; finish; }
size=$(curl -sS --max-time 60 -o /dev/null -w '%{http_code} %{size_download}' -H "Accept: $ACCEPT_ALL" \
  "http://127.0.0.1:$HP/v2/lab/huge/manifests/v1")
check_eq "control: the helper upstream serves the 5 MiB index" "200 $(stat -c %s "$T/huge.json")" "$size"

start_proxy proxy --upstream "upstream.test=http://$UP" --upstream "huge.test=http://127.0.0.1:$HP" \
  --default-upstream upstream.test ||
  { not_ok "proxy starts and answers GET /v2/" "$(tail -3 "$T/proxy.log")"; finish; }
ok "proxy starts and answers GET /v2/"
P=${ADDR[proxy]}

# req METHOD PATH [curl args...] : sets CODE, ERR (first OCI error code), BODY (file), HDR (file)
BODY=$T/resp.body HDR=$T/resp.hdr
req() {
  local m=$1 path=$2; shift 2
  local mflag=(-X "$m") out=$BODY
  [[ $m == HEAD ]] && mflag=(--head) out=/dev/null   # curl --head writes the headers to -o
  : >"$BODY"; : >"$HDR"
  CODE=$(curl -sS --path-as-is --max-time 60 "${mflag[@]}" -D "$HDR" -o "$out" -w '%{http_code}' "$@" "http://$P$path" 2>"$T/curl.err")
  ERR=$(jq -r '.errors[0].code // empty' "$BODY" 2>/dev/null)
}
hdr() { awk -v h="$(tr 'A-Z' 'a-z' <<<"$1"):" 'tolower($1)==h{ $1=""; sub(/^ /,""); print }' "$HDR" | tr -d '\r' | tail -1; }
# expect DESC STATUS-ERE CODE-ERE METHOD PATH [curl args...]   (CODE-ERE "" = don't care)
expect() {
  local desc=$1 st=$2 ec=$3; shift 3
  req "$@"
  if grep -q 'root:x:0:0' "$BODY"; then
    not_ok "$desc" "HTTP $CODE served a file from the host: $(head -c 80 "$BODY")"; return 1
  fi
  if [[ $CODE =~ ^($st)$ ]] && { [[ -z $ec ]] || [[ $ERR =~ ^($ec)$ ]]; }; then ok "$desc"; return 0; fi
  not_ok "$desc" "want HTTP $st ${ec:+code $ec}; got HTTP $CODE code '${ERR}' body: $(head -c 160 "$BODY")"
  return 1
}

# ---------------------------------------------------------------- base
req GET /v2/
check_eq "GET /v2/ -> 200" 200 "$CODE"
check_eq "GET /v2/ carries Docker-Distribution-API-Version: registry/2.0" "registry/2.0" "$(hdr Docker-Distribution-API-Version)"

# ---------------------------------------------------------------- names, tags, digests
expect "uppercase name /v2/UPPER/manifests/v1 -> 400 NAME_INVALID" 400 NAME_INVALID GET /v2/UPPER/manifests/v1
expect "name with empty component /v2/lab//small -> 400 NAME_INVALID" 400 NAME_INVALID GET /v2/lab//small/manifests/v1
expect "name starting with a separator /v2/-lab/small -> 400 NAME_INVALID" 400 NAME_INVALID GET /v2/-lab/small/manifests/v1
expect "name with a bad character /v2/lab/sm@ll -> 400 NAME_INVALID" 400 NAME_INVALID GET /v2/lab/sm%40ll/manifests/v1
long=$(printf 'a%.0s' $(seq 129))
# A tag-shaped reference that is not a valid tag names no manifest: 404 MANIFEST_UNKNOWN (what the
# distribution conformance suite expects), with the tag grammar in the message
expect "129-char tag -> 404 MANIFEST_UNKNOWN" 404 MANIFEST_UNKNOWN GET "/v2/lab/small/manifests/$long"
expect "tag starting with '.' -> 404 MANIFEST_UNKNOWN" 404 MANIFEST_UNKNOWN GET /v2/lab/small/manifests/.hidden
check_true "... the message names the tag grammar" "body: $(head -c 200 "$BODY")" \
  grep -qF '[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}' "$BODY"
expect "tag starting with '-' -> 404 MANIFEST_UNKNOWN" 404 MANIFEST_UNKNOWN GET /v2/lab/small/manifests/-dash
# "bad..tag" matches the spec's tag grammar [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}: unknown, never served
expect "tag bad..tag -> 404 MANIFEST_UNKNOWN" 404 MANIFEST_UNKNOWN \
  GET /v2/lab/small/manifests/bad..tag -H "Accept: $ACCEPT_ALL"
expect "128-char tag is valid: unknown -> 404 MANIFEST_UNKNOWN" 404 MANIFEST_UNKNOWN \
  GET "/v2/lab/small/manifests/${long:1}" -H "Accept: $ACCEPT_ALL"
expect "blob digest sha256:zz -> 400 DIGEST_INVALID" 400 DIGEST_INVALID GET /v2/lab/small/blobs/sha256:zz
expect "blob digest with 63 hex -> 400 DIGEST_INVALID" 400 DIGEST_INVALID GET "/v2/lab/small/blobs/sha256:$(printf '0%.0s' $(seq 63))"
expect "blob digest with uppercase hex -> 400 DIGEST_INVALID" 400 DIGEST_INVALID GET "/v2/lab/small/blobs/sha256:$(printf 'A%.0s' $(seq 64))"
expect "blob digest of unknown algorithm md5:... -> 400 DIGEST_INVALID" 400 DIGEST_INVALID GET "/v2/lab/small/blobs/md5:$(printf '0%.0s' $(seq 32))"
expect "manifest reference sha256:zz -> 400 DIGEST_INVALID" 400 DIGEST_INVALID GET /v2/lab/small/manifests/sha256:zz

# ---------------------------------------------------------------- path traversal (never a file)
expect "traversal /v2/lab/../../etc/manifests/v1 -> 400 NAME_INVALID or 404" '400|404' '' GET /v2/lab/../../etc/manifests/v1
[[ $CODE == 400 ]] && check_eq "traversal with 400 says NAME_INVALID" NAME_INVALID "$ERR"
expect "traversal /v2/lab/%2e%2e/%2e%2e/etc/manifests/v1 -> 400 or 404" '400|404' '' GET /v2/lab/%2e%2e/%2e%2e/etc/manifests/v1
[[ $CODE == 400 ]] && check_eq "%2e%2e traversal with 400 says NAME_INVALID" NAME_INVALID "$ERR"
expect "traversal /v2/%2e%2e%2f%2e%2e%2fetc/manifests/passwd -> 400 or 404" '400|404' '' GET /v2/%2e%2e%2f%2e%2e%2fetc/manifests/passwd
expect "traversal in blob digest /v2/lab/small/blobs/..%2f..%2f..%2fetc%2fpasswd -> 400 or 404" '400|404' '' \
  GET /v2/lab/small/blobs/..%2f..%2f..%2f..%2f..%2fetc%2fpasswd
expect "traversal /v2/../../../../etc/passwd -> 400 or 404" '400|404' '' GET /v2/../../../../etc/passwd
expect "traversal in the ns= upstream name -> 400 or 404" '400|404' '' GET "/v2/lab/small/manifests/v1?ns=../../etc"

# ---------------------------------------------------------------- write methods
expect "PUT manifest -> 405 UNSUPPORTED" 405 UNSUPPORTED PUT /v2/lab/small/manifests/v1 \
  -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' --data-binary '{"schemaVersion":2}'
expect "POST blob upload -> 405 UNSUPPORTED" 405 UNSUPPORTED POST /v2/lab/small/blobs/uploads/
expect "PATCH blob upload -> 405 UNSUPPORTED" 405 UNSUPPORTED PATCH /v2/lab/small/blobs/uploads/abc --data-binary 'x'
expect "DELETE manifest -> 405 UNSUPPORTED" 405 UNSUPPORTED DELETE "/v2/lab/small/manifests/$SMALLD"
expect "DELETE blob -> 405 UNSUPPORTED" 405 UNSUPPORTED DELETE "/v2/lab/small/blobs/$(largest_layer "$UP" lab/small v1)"
check_eq "the DELETE did not reach the upstream (manifest still there)" "$SMALLD" "$(manifest_digest "$UP" lab/small v1 2>&1)"

# ---------------------------------------------------------------- unknowns
expect "unknown upstream ?ns=nope.example -> 404 NAME_UNKNOWN" 404 NAME_UNKNOWN GET "/v2/lab/small/manifests/v1?ns=nope.example" -H "Accept: $ACCEPT_ALL"
expect "unknown tag -> 404 MANIFEST_UNKNOWN" 404 MANIFEST_UNKNOWN GET /v2/lab/small/manifests/no-such-tag -H "Accept: $ACCEPT_ALL"
expect "unknown repository -> 404 NAME_UNKNOWN or MANIFEST_UNKNOWN" 404 'NAME_UNKNOWN|MANIFEST_UNKNOWN' GET /v2/lab/no-such-repo/manifests/v1 -H "Accept: $ACCEPT_ALL"
expect "unknown manifest digest -> 404 MANIFEST_UNKNOWN" 404 MANIFEST_UNKNOWN GET "/v2/lab/small/manifests/sha256:$(printf '1%.0s' $(seq 64))" -H "Accept: $ACCEPT_ALL"
expect "unknown blob -> 404 BLOB_UNKNOWN" 404 BLOB_UNKNOWN GET "/v2/lab/small/blobs/sha256:$(printf '0%.0s' $(seq 64))"
expect "HEAD unknown blob -> 404" 404 '' HEAD "/v2/lab/small/blobs/sha256:$(printf '0%.0s' $(seq 64))"

# ---------------------------------------------------------------- HEAD / GET manifest headers
req GET /v2/lab/small/manifests/v1 -H "Accept: $ACCEPT_ALL"
getlen=$(stat -c %s "$BODY") gettype=$(hdr Content-Type)
check_eq "GET manifest lab/small:v1 -> 200" 200 "$CODE"
check_eq "GET manifest carries OCI-Namespace: upstream.test" upstream.test "$(hdr OCI-Namespace)"
req HEAD /v2/lab/small/manifests/v1 -H "Accept: $ACCEPT_ALL"
check_eq "HEAD manifest lab/small:v1 -> 200" 200 "$CODE"
check_eq "HEAD manifest Content-Type is the manifest's media type" "application/vnd.oci.image.manifest.v1+json" "$(hdr Content-Type)"
check_eq "HEAD manifest Docker-Content-Digest is the upstream's" "$SMALLD" "$(hdr Docker-Content-Digest)"
check_eq "HEAD manifest Content-Length equals the GET body length" "$getlen" "$(hdr Content-Length)"
# raw HEAD with Connection: close: nothing may follow the header block
head_body_bytes() {
  "$PY" - "$P" "$1" "$ACCEPT_ALL" <<'PY'
import socket, sys
host, port = sys.argv[1].split(":")
s = socket.create_connection((host, int(port)), timeout=5)
s.sendall(("HEAD %s HTTP/1.1\r\nHost: %s\r\nAccept: %s\r\nConnection: close\r\n\r\n" % (sys.argv[2], sys.argv[1], sys.argv[3])).encode())
data = b""
try:
    while True:
        b = s.recv(65536)
        if not b:
            break
        data += b
except socket.timeout:
    pass
head, sep, rest = data.partition(b"\r\n\r\n")
print(len(rest) if sep else "no-header-end")
PY
}
check_eq "HEAD manifest sends no body bytes" 0 "$(head_body_bytes /v2/lab/small/manifests/v1 2>&1)"
check_eq "GET and HEAD agree on Content-Type" "$gettype" "$(hdr Content-Type)"
req HEAD /v2/lab/small/manifests/v2s2 -H "Accept: $ACCEPT_ALL"
check_eq "HEAD manifest lab/small:v2s2 Content-Type is Docker schema2" \
  "application/vnd.docker.distribution.manifest.v2+json" "$(hdr Content-Type)"
req HEAD /v2/lab/multi/manifests/v1 -H "Accept: $ACCEPT_ALL"
check_eq "HEAD manifest lab/multi:v1 Content-Type is the OCI index type" \
  "application/vnd.oci.image.index.v1+json" "$(hdr Content-Type)"

# ---------------------------------------------------------------- blobs: HEAD, Range
BIGBLOB=$(largest_layer "$UP" lab/big v1)
BIGSIZE=$(curl -fsS --max-time 30 -H "Accept: $ACCEPT_ALL" "http://$UP/v2/lab/big/manifests/v1" | jq -r '.layers | max_by(.size) | .size')
curl -fsS --max-time 60 -H 'Range: bytes=0-199' -o "$T/up-first200" "http://$UP/v2/lab/big/blobs/$BIGBLOB"
req GET "/v2/lab/big/blobs/$BIGBLOB" -H 'Range: bytes=0-99'
check_eq "cold blob GET Range: bytes=0-99 -> 206" 206 "$CODE"
check_eq "Range 0-99 body is 100 bytes" 100 "$(stat -c %s "$BODY")"
check_eq "Range 0-99 bytes are the blob's first 100" "$(head -c 100 "$T/up-first200" | sha256sum)" "$(sha256sum <"$BODY")"
check_eq "Range 0-99 Content-Range" "bytes 0-99/$BIGSIZE" "$(hdr Content-Range)"
sum=$(curl -sS --max-time 600 "http://$P/v2/lab/big/blobs/$BIGBLOB" | sha256sum | cut -d' ' -f1)
check_eq "full GET of the 200 MiB blob has the right digest" "$BIGBLOB" "sha256:$sum"
req GET "/v2/lab/big/blobs/$BIGBLOB" -H 'Range: bytes=100-199'
check_eq "cached blob GET Range: bytes=100-199 -> 206, 100 bytes, right bytes" \
  "206 100 $(tail -c 100 "$T/up-first200" | sha256sum)" "$CODE $(stat -c %s "$BODY") $(sha256sum <"$BODY")"
req HEAD "/v2/lab/big/blobs/$BIGBLOB"
check_eq "HEAD blob -> 200 with Content-Length = size" "200 $BIGSIZE" "$CODE $(hdr Content-Length)"

# ---------------------------------------------------------------- tags/list
req GET /v2/lab/small/tags/list
check_eq "tags/list -> 200 with both tags" "200 v1,v2s2" "$CODE $(jq -r '.tags | sort | join(",")' "$BODY" 2>/dev/null)"
check_eq "tags/list name is the repository" lab/small "$(jq -r .name "$BODY" 2>/dev/null)"
# distribution 2.8 ignores n= (it returns every tag, no Link): through the proxy ?n=1 must at
# least still work. Pagination itself is checked against huge.test, whose helper paginates.
uplink=$(curl -sS --max-time 30 -D - -o "$T/uptags.json" "http://$UP/v2/lab/small/tags/list?n=1" | awk 'tolower($1)=="link:"' | tr -d '\r')
log "for reference, distribution answers tags/list?n=1 with $(jq -r '.tags | length' "$T/uptags.json") tag(s), Link: '${uplink#*: }'"
req GET '/v2/lab/small/tags/list?n=1'
check_true "tags/list?n=1 (upstream ignores n) -> 200 with 1 or 2 of the tags" "HTTP $CODE $(head -c 100 "$BODY")" \
  bash -c '[[ $1 == 200 ]] && jq -e "(.tags|length) >= 1 and (.tags - [\"v1\",\"v2s2\"] | length) == 0" "$2"' _ "$CODE" "$BODY"

# pagination_walk DESC PATH-PREFIX QUERY : ?n=1 gives 1 tag + Link under PATH-PREFIX; following it gives the other
pagination_walk() {
  local desc=$1 pfx=$2 q=$3 first link next
  req GET "$pfx/tags/list?n=1$q"
  first=$(jq -r '.tags | join(",")' "$BODY" 2>/dev/null)
  link=$(hdr Link)
  check_eq "$desc: ?n=1 -> 200 with exactly one tag" "200 1" "$CODE $(jq -r '.tags | length' "$BODY" 2>/dev/null)"
  check_true "$desc: Link header points at the next page under $pfx" "Link: '$link'" \
    grep -qE "^<([a-z]+://[^/]+)?$pfx/tags/list\?[^>]*last=[^>]*>; *rel=\"?next\"?" <<<"$link"
  next=$(sed -E 's/^<([^>]*)>.*/\1/' <<<"$link")
  next=/v2/${next#*/v2/}
  # a Link that dropped ns= would send the client to the default upstream
  [[ -n $q ]] && check_true "$desc: the Link keeps ${q#&}" "Link: '$link'" grep -qF "${q#&}" <<<"$link"
  req GET "$next"
  check_eq "$desc: following the Link gives the other tag" "200 v1,v2s2" \
    "$CODE $(printf '%s\n%s\n' "$first" "$(jq -r '.tags | join(",")' "$BODY" 2>/dev/null)" | sort | paste -sd,)"
}
pagination_walk "paginating upstream via ?ns=huge.test" /v2/lab/small "&ns=huge.test"
pagination_walk "paginating upstream via path prefix huge.test" /v2/huge.test/lab/small ""

# ---------------------------------------------------------------- manifest over 4 MiB
expect "upstream manifest over 4 MiB (by tag) is refused, not served" '4[0-9][0-9]|5[0-9][0-9]' '' \
  GET "/v2/lab/huge/manifests/v1?ns=huge.test" -H "Accept: $ACCEPT_ALL"
check_true "the refusal is OCI error JSON" "body: $(head -c 160 "$BODY")" test -n "$ERR"
expect "upstream manifest over 4 MiB (by digest) is refused, not served" '4[0-9][0-9]|5[0-9][0-9]' '' \
  GET "/v2/lab/huge/manifests/$HUGED?ns=huge.test" -H "Accept: $ACCEPT_ALL"
expect "upstream manifest over 4 MiB (HEAD) is not 200" '4[0-9][0-9]|5[0-9][0-9]' '' \
  HEAD "/v2/lab/huge/manifests/v1?ns=huge.test" -H "Accept: $ACCEPT_ALL"
req GET /v2/huge.test/lab/small/manifests/v1 -H "Accept: $ACCEPT_ALL"
check_eq "the same upstream still serves normal manifests (path prefix huge.test)" "200 $SMALLD" \
  "$CODE sha256:$(sha256sum <"$BODY" | cut -d' ' -f1)"

check_true "proxy still running after all of the above" "it exited: $(tail -3 "$T/proxy.log")" is_running proxy

# ---------------------------------------------------------------- ranges past the end (last: may crash the proxy)
expect "Range: bytes=5-2 (last < first) -> 416 or the whole blob (200)" '416|200' '' \
  GET "/v2/lab/big/blobs/$BIGBLOB" -H "Range: bytes=5-2" --max-filesize 1000
expect "Range starting at the blob size (bytes=$BIGSIZE-) -> 416" 416 '' \
  GET "/v2/lab/big/blobs/$BIGBLOB" -H "Range: bytes=$BIGSIZE-"
expect "Range starting far past the end (bytes=999999999999-) -> 416" 416 '' \
  GET "/v2/lab/big/blobs/$BIGBLOB" -H "Range: bytes=999999999999-"
sleep 0.5
check_true "proxy still running after out-of-range Range requests" "it exited: $(tail -2 "$T/proxy.log" | tr '\n' ' ')" \
  is_running proxy
finish
