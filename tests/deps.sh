#!/usr/bin/env bash
# Installs what building and testing euphoriafs needs on Debian 12 (bookworm) or
# Debian 13 (trixie), if missing. Sourced by tests/run-all.sh and tests/demo.sh;
# run-all.sh also sources it inside its Debian 13 chroot (the deb13 stage).
#   euphoria_install_deps [EXTRA_PACKAGE...]
set -euo pipefail

# The same names on both releases. catch2 is 2.13 (one header) on 12 and 3.x (a
# compiled library) on 13; tests/support/catch_compat.hpp takes either.
EUPHORIA_DEPS=(
  g++ cmake make pkg-config
  libfuse3-dev fuse3 libcurl4-openssl-dev libssl-dev libxml2-dev libboost-program-options-dev catch2
  python3 openssl ca-certificates sox espeak-ng attr
  groff-base man-db mandoc dpkg-dev file rpm lintian
  clang clang-tidy
  # The pcm/ view: libgsm decodes GSM 6.10; its end-to-end tests check the view
  # with ffprobe and play it in Debian's chromium, headless.
  libgsm1-dev ffmpeg chromium
  # The day folders' end-to-end tests copy a day out as a script would.
  rsync
  # A fleet's shared budget (-o redis=URL): hiredis, and a real Redis for its tests.
  libhiredis-dev redis-server
)

# What differs: clang's runtime (libFuzzer, the sanitizers) is versioned. 12's clang
# is 14; 13 has a libclang-rt-dev that follows its default clang.
euphoria_release() {
  local id="" codename=""
  if [[ -r /etc/os-release ]]; then
    id=$(. /etc/os-release && echo "${ID:-}")
    codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
  fi
  echo "${id}:${codename}"
}

case "$(euphoria_release)" in
  debian:bookworm) EUPHORIA_DEPS+=(libclang-rt-14-dev) ;;
  debian:trixie) EUPHORIA_DEPS+=(libclang-rt-dev) ;;
  *)
    echo "deps.sh: $(euphoria_release) is neither Debian 12 nor 13; trying Debian 13's names" >&2
    EUPHORIA_DEPS+=(libclang-rt-dev)
    ;;
esac

euphoria_install_deps() {
  local missing=()
  for p in "${EUPHORIA_DEPS[@]}" "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    echo "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}
