#!/usr/bin/env bash
# Builds euphoriafs and runs every test, on Debian 12 or 13 as root:
#   normal  the normal build: unit, client-against-mock, end-to-end (real FUSE
#           mounts), docs and package checks, through ctest;
#   asan    the same suite again built with AddressSanitizer + UBSan;
#   tsan    the concurrency tests built with ThreadSanitizer;
#   tidy    clang-tidy on src/ and tests/;
#   fuzz    each libFuzzer target for a bounded time;
#   deb13   the normal stage again, in a Debian 13 chroot (tests/deb13.sh).
# A sanitizer report anywhere, in a test or in a mount daemon, fails the run.
# EUPHORIA_STAGES="normal asan" runs a subset (default: all six). The normal build
# goes to build/ (EUPHORIA_BUILD_DIR), the others to build-STAGE/.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

STAGES=${EUPHORIA_STAGES:-"normal asan tsan tidy fuzz deb13"}
FUZZ_SECONDS=${EUPHORIA_FUZZ_SECONDS:-60}
BUILD=${EUPHORIA_BUILD_DIR:-$ROOT/build}
JOBS=$(nproc)

stage() { printf '\n===== %s (at %d min %02d s) =====\n' "$*" $((SECONDS / 60)) $((SECONDS % 60)); }
wants() { [[ " $STAGES " == *" $1 "* ]]; }

source tests/deps.sh
if wants deb13; then
  euphoria_install_deps debootstrap
else
  euphoria_install_deps
fi

# Each stage configures with its preset from CMakePresets.json, with -Werror.
configure_and_build() {  # PRESET DIR "TARGETS", extra cmake args...
  local preset=$1 dir=$2 targets=$3; shift 3
  cmake --preset "$preset" -B "$dir" -DEUPHORIA_WERROR=ON "$@" >/dev/null
  cmake --build "$dir" -j"$JOBS" --target $targets
}

# Sanitizer reports go to files, so that a report from a daemon (whose stderr
# nobody reads) still fails the run.
run_sanitized_ctest() {  # DIR, ctest args...
  local dir=$1; shift
  # Absolute: each test runs in its own folder, and a daemon in /, and a relative
  # log_path would put their reports where nothing looks.
  local reports
  reports="$(cd "$dir" && pwd)/sanitizer-reports"
  rm -rf "$reports" && mkdir -p "$reports"
  ASAN_OPTIONS="log_path=$reports/asan:detect_leaks=1:abort_on_error=1" \
  UBSAN_OPTIONS="log_path=$reports/ubsan:print_stacktrace=1:halt_on_error=1" \
  TSAN_OPTIONS="log_path=$reports/tsan:halt_on_error=1:second_deadlock_stack=1" \
    ctest --test-dir "$dir" --output-on-failure "$@"
  if compgen -G "$reports/*" >/dev/null; then
    echo "sanitizer reports:"; cat "$reports"/*
    return 1
  fi
}

# In parallel where the tests allow: the e2e tests are RUN_SERIAL (they mount, count
# daemons and time reads), the unit, integration and docs tests are not.
if wants normal; then
  stage "normal build: every test"
  configure_and_build default "$BUILD" all
  ctest --test-dir "$BUILD" --output-on-failure -j"$JOBS"
fi

if wants asan; then
  stage "AddressSanitizer + UBSan: every test"
  configure_and_build asan build-asan all
  # The full two-minute soak ran in the normal build; here it is a shorter one.
  EUPHORIA_SOAK_SECONDS=${EUPHORIA_ASAN_SOAK_SECONDS:-30} run_sanitized_ctest build-asan -j"$JOBS"
fi

if wants tsan; then
  stage "ThreadSanitizer: throttle, coalescing, cache, interrupts, cancellation"
  configure_and_build tsan build-tsan "unit_tests integration_tests"
  run_sanitized_ctest build-tsan -R '^(unit|client_mock)$' -j"$JOBS"
fi

# tests/.clang-tidy adds the test helpers' headers and leaves out three checks that
# are about production code. The fuzz targets are only in the fuzz build's compile
# commands, so that build is configured (not built) first.
if wants tidy; then
  stage "clang-tidy on src/ and tests/"
  [[ -f $BUILD/compile_commands.json ]] || configure_and_build default "$BUILD" all
  tidy() { xargs -0 -P"$JOBS" -n4 clang-tidy --quiet --warnings-as-errors='*' "$@"; }
  find src tests -name '*.cpp' -not -path 'tests/fuzz/*' -print0 | tidy -p "$BUILD"
  cmake --preset fuzz -B build-fuzz >/dev/null
  find tests/fuzz -name '*.cpp' -print0 | tidy -p build-fuzz
fi

if wants fuzz; then
  stage "libFuzzer, ${FUZZ_SECONDS} s per target"
  FUZZ_BUILD_DIR="$ROOT/build-fuzz" bash tests/fuzz/run.sh "$FUZZ_SECONDS"
fi

if wants deb13; then
  stage "Debian 13 chroot: the normal stage"
  bash tests/deb13.sh
fi

stage "all stages passed: $STAGES"
