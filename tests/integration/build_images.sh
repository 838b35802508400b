#!/usr/bin/env bash
# Builds the integration-test images offline, as OCI layouts, into CACHE_DIR.
# Usage: build_images.sh CACHE_DIR VERSION   (run by lib.sh's build_images under flock)
#   CACHE_DIR/oci:small   OCI manifest, 2 layers (busybox-static, text files), linux/amd64
#   CACHE_DIR/oci:big     small + one 200 MiB incompressible, deterministic layer
#   CACHE_DIR/multi:v1    OCI image index linux/amd64 + linux/arm64 (buildah, vfs, private root)
# Writes CACHE_DIR/complete-vVERSION last; a partial earlier build is thrown away.
set -euo pipefail
cache=$1 version=$2
[[ -f $cache/complete-v$version ]] && exit 0
for t in umoci buildah openssl jq; do command -v "$t" >/dev/null || { echo "missing $t" >&2; exit 1; }; done
[[ -x /bin/busybox ]] || { echo "missing /bin/busybox (busybox-static)" >&2; exit 1; }

src=$cache/src oci=$cache/oci multi=$cache/multi
B=(buildah --root "$cache/buildah-root" --runroot "$cache/buildah-run" --storage-driver vfs)
epoch=1970-01-01T00:00:00Z
export SOURCE_DATE_EPOCH=0
rm -rf "$oci" "$multi" "$src" "$cache/buildah-root" "$cache/buildah-run" "$cache"/complete-v*

# ---- sources (deterministic)
mkdir -p "$src/bin" "$src/text/etc"
cp /bin/busybox "$src/bin/busybox"
printf 'hello from the portcullis integration tests\n' >"$src/text/hello.txt"
printf 'root:x:0:0:root:/:/bin/sh\n' >"$src/text/etc/passwd"
find "$src" -exec touch -h -d @0 {} +
# 200 MiB pseudo-random but reproducible: the AES-CTR keystream of zeros
{ openssl enc -aes-256-ctr -nosalt -pass pass:portcullis-it-seed -pbkdf2 </dev/zero 2>/dev/null || true; } |
  head -c $((200 * 1024 * 1024)) >"$src/big.bin"
[[ $(stat -c %s "$src/big.bin") -eq $((200 * 1024 * 1024)) ]] || { echo "big.bin short" >&2; exit 1; }
touch -d @0 "$src/big.bin"

# ---- umoci: small (2 layers) and big (3 layers)
umoci init --layout "$oci"
umoci new --image "$oci:small"
umoci insert --image "$oci:small" --history.created $epoch "$src/bin" /bin
umoci insert --image "$oci:small" --history.created $epoch "$src/text" /
umoci config --image "$oci:small" --history.created $epoch --created $epoch \
  --os linux --architecture amd64 \
  --config.entrypoint /bin/busybox --config.cmd cat --config.cmd /hello.txt \
  --config.label org.example.portcullis=small
umoci tag --image "$oci:small" big
umoci insert --image "$oci:big" --history.created $epoch "$src/big.bin" /big.bin
umoci config --image "$oci:big" --history.created $epoch --created $epoch \
  --config.label org.example.portcullis=big
umoci gc --layout "$oci"

# ---- buildah: two single-arch images and an OCI index of them
for arch in amd64 arm64; do
  c=$("${B[@]}" from --arch "$arch" --os linux scratch)
  printf 'this is the %s variant\n' "$arch" >"$src/arch-$arch.txt"
  touch -d @0 "$src/arch-$arch.txt"
  "${B[@]}" copy "$c" "$src/arch-$arch.txt" /arch.txt >/dev/null
  "${B[@]}" config --arch "$arch" --os linux --cmd '["/arch.txt"]' --label "org.example.portcullis=multi-$arch" "$c"
  "${B[@]}" commit -q --timestamp 0 --format oci "$c" "localhost/it-multi-$arch" >/dev/null
  "${B[@]}" rm "$c" >/dev/null
done
"${B[@]}" manifest create localhost/it-multi-index >/dev/null
"${B[@]}" manifest add localhost/it-multi-index containers-storage:localhost/it-multi-amd64 >/dev/null
"${B[@]}" manifest add localhost/it-multi-index containers-storage:localhost/it-multi-arm64 >/dev/null
"${B[@]}" manifest push -q --all --format oci localhost/it-multi-index "oci:$multi:v1"
"${B[@]}" rmi -a -f >/dev/null 2>&1 || true
rm -rf "$cache/buildah-root" "$cache/buildah-run" "$src/big.bin"

# ---- sanity
n=$(jq '.layers | length' "$oci/blobs/sha256/$(jq -r '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"]=="small") | .digest' "$oci/index.json" | cut -d: -f2)")
[[ $n == 2 ]] || { echo "small has $n layers, want 2" >&2; exit 1; }
top=$(jq -r '.manifests[0].digest' "$multi/index.json" | cut -d: -f2)
[[ $(jq -r '.mediaType' "$multi/blobs/sha256/$top") == application/vnd.oci.image.index.v1+json ]] ||
  { echo "multi:v1 is not an OCI index" >&2; exit 1; }
[[ $(jq '.manifests | length' "$multi/blobs/sha256/$top") == 2 ]] || { echo "multi:v1 has not 2 manifests" >&2; exit 1; }
touch "$cache/complete-v$version"
echo "built test images in $cache"
