#!/usr/bin/env bash
# Installs the Debian 12 packages weft builds and tests with, if any is
# missing. Idempotent: does nothing when everything is installed. Needs root to
# install; otherwise prints the apt-get command and fails.
set -euo pipefail

# libboost-context1.81-dev, not the 1.74 default (its -dev package conflicts
# with 1.81, and the Boost.Fiber peer needs 1.81). clang-14 builds the
# clang-dev and fuzz presets; libclang-rt-14-dev carries its sanitizer
# runtimes and libFuzzer. python3 runs tools/weft-trace (the offline trace
# viewer) and its test. gdb runs test_gdb (tools/gdb/weft.py).
packages=(
  build-essential cmake ninja-build
  libboost-context1.81-dev libfmt-dev
  googletest libgtest-dev libgmock-dev libbenchmark-dev
  clang clang-14 libclang-rt-14-dev
  python3
  gdb
)

missing=()
for pkg in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$pkg")
done

if ((${#missing[@]} == 0)); then
  exit 0
fi

install_cmd=(apt-get install -y --no-install-recommends "${packages[@]}")
if ((EUID != 0)); then
  echo "deps.sh: missing packages: ${missing[*]}" >&2
  echo "deps.sh: run as root:" >&2
  echo "  apt-get update && DEBIAN_FRONTEND=noninteractive ${install_cmd[*]}" >&2
  exit 1
fi

echo "deps.sh: installing missing packages: ${missing[*]}"
apt-get update
DEBIAN_FRONTEND=noninteractive "${install_cmd[@]}"
