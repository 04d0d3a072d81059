#!/usr/bin/env bash
# Builds the release preset's tour target and runs the tour (examples/tour.cpp). Arguments
# are passed on to the tour.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/deps.sh
cmake --preset release
cmake --build --preset release -j2 --target tour
./build/release/tour "$@"
