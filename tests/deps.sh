#!/usr/bin/env bash
# Installs what building and testing euphoriafs needs on Debian 12, if missing.
# Sourced by tests/run-all.sh and tests/demo.sh.
set -euo pipefail

EUPHORIA_DEPS=(
  g++ cmake make pkg-config
  libfuse3-dev fuse3 libcurl4-openssl-dev libxml2-dev libboost-program-options-dev catch2
  python3 openssl ca-certificates sox espeak-ng attr
  groff-base man-db mandoc dpkg-dev file rpm lintian
  clang clang-tidy libclang-rt-14-dev
)

euphoria_install_deps() {
  local missing=()
  for p in "${EUPHORIA_DEPS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    echo "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}
