#!/usr/bin/env bash
# Builds euphoriafs and runs every test, on Debian 12 as root:
#   1. the normal build: unit, client-against-mock, end-to-end (real FUSE mounts),
#      docs and package checks, through ctest;
#   2. the same suite again built with AddressSanitizer + UBSan;
#   3. the concurrency tests built with ThreadSanitizer;
#   4. clang-tidy on src/;
#   5. each libFuzzer target for a bounded time.
# A sanitizer report anywhere, in a test or in a mount daemon, fails the run.
# EUPHORIA_STAGES="normal asan" runs a subset (default: all five).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
source tests/deps.sh
euphoria_install_deps

STAGES=${EUPHORIA_STAGES:-"normal asan tsan tidy fuzz"}
FUZZ_SECONDS=${EUPHORIA_FUZZ_SECONDS:-60}
JOBS=$(nproc)

stage() { printf '\n===== %s =====\n' "$*"; }
wants() { [[ " $STAGES " == *" $1 "* ]]; }

configure_and_build() {  # DIR "TARGETS", extra cmake args...
  local dir=$1 targets=$2; shift 2
  cmake -S "$ROOT" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DEUPHORIA_WERROR=ON \
        -DCMAKE_EXPORT_COMPILE_COMMANDS=ON "$@" >/dev/null
  cmake --build "$dir" -j"$JOBS" --target $targets
}

# Sanitizer reports go to files, so that a report from a daemon (whose stderr
# nobody reads) still fails the run.
run_sanitized_ctest() {  # DIR, ctest args...
  local dir=$1; shift
  local reports="$dir/sanitizer-reports"
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

if wants normal; then
  stage "normal build: every test"
  configure_and_build build all
  ctest --test-dir build --output-on-failure
fi

if wants asan; then
  stage "AddressSanitizer + UBSan: every test"
  configure_and_build build-asan all -DEUPHORIA_SANITIZE=ON
  # The full two-minute soak ran in the normal build; here it is a shorter one.
  EUPHORIA_SOAK_SECONDS=${EUPHORIA_ASAN_SOAK_SECONDS:-30} run_sanitized_ctest build-asan
fi

if wants tsan; then
  stage "ThreadSanitizer: throttle, coalescing, cache, interrupts, cancellation"
  configure_and_build build-tsan "unit_tests integration_tests" -DEUPHORIA_TSAN=ON
  run_sanitized_ctest build-tsan -R '^(unit|client_mock)$'
fi

if wants tidy; then
  stage "clang-tidy on src/"
  [[ -f build/compile_commands.json ]] || configure_and_build build all
  find src -name '*.cpp' -print0 | xargs -0 -P"$JOBS" -n4 clang-tidy -p build --quiet --warnings-as-errors='*'
fi

if wants fuzz; then
  stage "libFuzzer, ${FUZZ_SECONDS} s per target"
  FUZZ_BUILD_DIR="$ROOT/build-fuzz" bash tests/fuzz/run.sh "$FUZZ_SECONDS"
fi

stage "all stages passed: $STAGES"
