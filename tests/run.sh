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
# Two tests at a time (CTEST_PARALLEL_LEVEL overrides): the unit test cases run
# beside the integration suites, which still take turns (RESOURCE_LOCK peers).
export CTEST_PARALLEL_LEVEL=${CTEST_PARALLEL_LEVEL:-2}
exec ctest --test-dir build --output-on-failure "$@"
