#!/usr/bin/env bash
# Installs what Portcullis needs on Debian 12 (build libraries and, unless --build-only,
# the real peers the integration tests run against), then builds into ./build.
# Usage: ./setup.sh [--build-only] [--no-install] [--no-update]
#   --build-only  only the build libraries, not the test peers
#   --no-install  build only; install nothing
#   --no-update   skip `apt-get update` (the caller ran it)
# Env: PORTCULLIS_EXTRA_PKGS  more packages for the same apt-get call (CI adds clang
#      for the fuzz and sanitizer runs: one install instead of two)
set -euo pipefail
cd "$(dirname "$0")"
build_only=0; install=1; update=1
for a in "$@"; do
  case $a in
    --build-only) build_only=1 ;;
    --no-install) install=0 ;;
    --no-update) update=0 ;;
    *) echo "setup.sh: unknown option $a" >&2; exit 2 ;;
  esac
done
BUILD_PKGS=(g++ cmake ninja-build pkg-config libcpp-httplib-dev libssl-dev libsodium-dev
            nlohmann-json3-dev librocksdb-dev doctest-dev libboost1.81-dev libisal-dev)
# Peers for the integration tests: a real registry, real clients, image builders.
PEER_PKGS=(docker-registry skopeo podman buildah umoci containerd docker.io jq curl
           python3-cryptography python3-nacl uidmap busybox-static openssl iproute2
           nginx-light wrk)
pkgs=("${BUILD_PKGS[@]}")
((build_only)) || pkgs+=("${PEER_PKGS[@]}")
read -r -a extra <<<"${PORTCULLIS_EXTRA_PKGS:-}"
pkgs+=("${extra[@]}")
if ((install)); then
  missing=()
  for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if ((${#missing[@]})); then
    SUDO=; [[ $(id -u) -eq 0 ]] || SUDO=sudo
    export DEBIAN_FRONTEND=noninteractive
    if ((update)); then $SUDO apt-get update -q; fi
    $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
  fi
fi
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build
