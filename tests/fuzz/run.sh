#!/usr/bin/env bash
# Builds the libFuzzer targets with clang, replays the saved findings, then fuzzes
# each target for a bounded time on a copy of its seed corpus. Exits non-zero on any
# finding (crash, sanitizer report, leak, timeout, differential mismatch) and keeps
# the reproducer, printing its path.
#
#   tests/fuzz/run.sh [SECONDS] [BUILD_DIR]
#
# SECONDS per target (default 60); BUILD_DIR defaults to $FUZZ_BUILD_DIR, else
# build-fuzz in the repository. Needs clang and its runtime: libclang-rt-14-dev on
# Debian 12, libclang-rt-dev on 13 (tests/deps.sh installs it).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
seconds=${1:-60}
build=${2:-${FUZZ_BUILD_DIR:-$repo/build-fuzz}}
if ! [[ $seconds =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: $0 [SECONDS] [BUILD_DIR]" >&2
  exit 2
fi
for tool in clang clang++ cmake; do
  command -v "$tool" >/dev/null ||
    { echo "fuzz: $tool not found (see tests/deps.sh)" >&2; exit 2; }
done

# target  max_len  timeout-per-input (s)
targets=(
  "fuzz_reply 16384 20"
  "fuzz_listing 16384 20"
  "fuzz_credentials 4096 10"
  "fuzz_options 2048 10"
  "fuzz_pcm 8192 10"
)

CC=clang CXX=clang++ cmake -S "$repo" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DEUPHORIA_FUZZ=ON -DEUPHORIA_WERROR=OFF -DBUILD_TESTING=OFF >/dev/null
cmake --build "$build" -j"$(nproc)" --target fuzz_reply fuzz_listing fuzz_credentials fuzz_options fuzz_pcm >/dev/null

work=$(mktemp -d "${TMPDIR:-/tmp}/euphoria-fuzz.XXXXXX")
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
failed=0
summary=()

report() {  # NAME LOG WHAT
  echo "=== $1: $3; last lines of $2:" >&2
  tail -n 60 "$2" >&2
}

for spec in "${targets[@]}"; do
  read -r name max_len timeout <<<"$spec"
  bin=$build/tests/fuzz/$name
  dir=$work/$name
  mkdir -p "$dir/corpus" "$dir/artifacts"
  status=OK

  # Saved findings first: each must now pass.
  regressions=0
  if compgen -G "$here/findings/$name/*" >/dev/null; then
    for input in "$here/findings/$name/"*; do
      regressions=$((regressions + 1))
      if ! "$bin" -timeout="$timeout" -rss_limit_mb=2048 "$input" >"$dir/replay.log" 2>&1; then
        failed=1
        status="FINDING (replay)"
        report "$name" "$dir/replay.log" "saved finding still fails"
        echo "=== reproduce: $bin $input" >&2
      fi
    done
  fi

  cp "$here/corpus/$name/"* "$dir/corpus/"
  rc=0
  "$bin" -max_total_time="$seconds" -max_len="$max_len" -timeout="$timeout" \
    -rss_limit_mb=2048 -print_final_stats=1 -dict="$here/${name#fuzz_}.dict" \
    -artifact_prefix="$dir/artifacts/" "$dir/corpus" >"$dir/log" 2>&1 || rc=$?

  runs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$dir/log" | tail -n 1)
  [[ -n $runs ]] ||
    runs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$dir/log" | tail -n 1)
  cov=$(grep -o 'cov: [0-9]*' "$dir/log" | tail -n 1 | cut -d' ' -f2 || true)
  ft=$(grep -o 'ft: [0-9]*' "$dir/log" | tail -n 1 | cut -d' ' -f2 || true)
  corpus=$(find "$dir/corpus" -type f | wc -l)
  artifacts=$(find "$dir/artifacts" -type f | sort)
  if ((rc != 0)) || [[ -n $artifacts ]]; then
    failed=1
    status="FINDING (exit $rc)"
    report "$name" "$dir/log" "finding"
    for a in $artifacts; do echo "=== reproduce: $bin $a" >&2; done
  fi
  summary+=("$(printf '%-17s %-18s runs %-9s cov %-5s ft %-6s corpus %-5s saved findings %s' \
    "$name" "$status" "${runs:-?}" "${cov:-?}" "${ft:-?}" "$corpus" "$regressions")")
done

echo "fuzz summary (${seconds} s per target):"
printf '  %s\n' "${summary[@]}"
if ((failed)); then
  echo "fuzz: FAILED; logs and reproducers kept in $work" >&2
  exit 1
fi
rm -rf "$work"
