#!/usr/bin/env bash
# Runs every test: installs the build libraries and the real peers (apt-get),
# builds, then ctest runs the unit tests and the integration suites, which start
# their own docker-registry, skopeo, podman, containerd and dockerd on 127.0.0.1.
# Integration suites need root (dockerd, /etc/hosts pins for the test).
# Usage: tests/run.sh [--no-update] [ctest args...]   e.g. tests/run.sh -L unit
set -euo pipefail
cd "$(dirname "$0")/.."
setup_args=()
if [[ ${1:-} == --no-update ]]; then setup_args+=(--no-update); shift; fi
./setup.sh "${setup_args[@]}"
# Two tests at a time (CTEST_PARALLEL_LEVEL overrides): unit test cases and
# integration suites side by side; the suites that drive the machine's dockerd,
# containerd or podman take turns (RESOURCE_LOCK system_daemons).
export CTEST_PARALLEL_LEVEL=${CTEST_PARALLEL_LEVEL:-2}
exec ctest --test-dir build --output-on-failure "$@"
