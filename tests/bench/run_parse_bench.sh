#!/usr/bin/env bash
# Compares ReplyParser's throughput with GNU `base64 -d` decoding the same payload,
# for an unwrapped reply and one wrapped with CRLF every 76 characters. The two
# alternate run by run, so drifts in machine load hit both alike.
#
# usage: run_parse_bench.sh [out-dir]        (default ./bench-out)
# env:   PARSE_BENCH  path to the parse_bench binary (default: looked up in the build tree)
#        SIZE_MB      size of the base64 text in 10^6 bytes (default 100)
#        RUNS         runs of each side per reply shape (default 5, at least 5)
#
# Writes parse_bench.md and parse_bench.json to out-dir. Exits 0 when the target is
# missed too (it says MISS); non-zero only when the benchmark itself fails.
set -euo pipefail

out_dir=${1:-./bench-out}
size_mb=${SIZE_MB:-100}
runs=${RUNS:-5}
target=3    # the speedup over base64 -d we aim for
minimum=1   # below this ReplyParser would be the bottleneck base64 -d is not

if ((runs < 5)); then runs=5; fi

script=run_parse_bench.sh
source "$(dirname "$0")/bench_lib.sh"
find_bench parse_bench PARSE_BENCH
need_tools base64 jq awk date

mkdir -p "$out_dir"
make_work_dir

results=()
for shape in unwrapped crlf76; do
    flags=()
    [[ $shape == crlf76 ]] && flags=(--wrap)
    payload=$work/payload-$shape.b64
    ours=()
    theirs=()
    for ((run = 1; run <= runs; ++run)); do
        payload_flag=()
        ((run == 1)) && payload_flag=(--payload "$payload")
        json=$("$bench" --size-mb "$size_mb" --runs 1 "${flags[@]}" "${payload_flag[@]}")
        ours+=("$(jq -r .median_mb_per_s <<< "$json")")
        decoded=$(jq -r .decoded_bytes <<< "$json")

        start=$(date +%s%N)
        base64 -d "$payload" > /dev/null
        end=$(date +%s%N)
        theirs+=("$(awk -v bytes="$decoded" -v ns=$((end - start)) \
            'BEGIN { printf "%.1f", bytes / ns * 1e3 }')")
        echo "$shape run $run: ours ${ours[-1]} MB/s, base64 -d ${theirs[-1]} MB/s" >&2
    done

    ours_median=$(printf '%s\n' "${ours[@]}" | median)
    theirs_median=$(printf '%s\n' "${theirs[@]}" | median)
    speedup=$(awk -v a="$ours_median" -v b="$theirs_median" 'BEGIN { printf "%.2f", a / b }')
    if awk -v s="$speedup" -v t="$target" 'BEGIN { exit !(s >= t) }'; then
        verdict=PASS
    elif awk -v s="$speedup" -v m="$minimum" 'BEGIN { exit !(s >= m) }'; then
        verdict="MISS (target ${target}x)"
    else
        verdict="MISS (below the ${minimum}x hard minimum)"
    fi

    results+=("$(jq -n \
        --arg shape "$shape" --arg verdict "$verdict" \
        --argjson decoded "$decoded" \
        --argjson ours "$(printf '%s\n' "${ours[@]}" | jq -s .)" \
        --argjson theirs "$(printf '%s\n' "${theirs[@]}" | jq -s .)" \
        --argjson ours_median "$ours_median" --argjson theirs_median "$theirs_median" \
        --argjson speedup "$speedup" --argjson target "$target" \
        '{shape: $shape, decoded_bytes: $decoded,
          reply_parser_mb_per_s: $ours, base64_d_mb_per_s: $theirs,
          reply_parser_median_mb_per_s: $ours_median, base64_d_median_mb_per_s: $theirs_median,
          speedup: $speedup, target_speedup: $target, verdict: $verdict}')")
done

printf '%s\n' "${results[@]}" | jq -s \
    --argjson size_mb "$size_mb" --argjson runs "$runs" \
    --arg cpu "$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2> /dev/null || true)" \
    --arg base64 "$(base64 --version | head -n 1)" \
    --arg note "MB/s of decoded bytes; base64 -d reads LF line ends, as it rejects CR" \
    '{size_mb: $size_mb, runs: $runs, cpu: $cpu, base64: $base64, note: $note, results: .}' \
    > "$out_dir/parse_bench.json"

{
    echo "| reply | ReplyParser median MB/s | base64 -d median MB/s | speedup | verdict |"
    echo "|---|---:|---:|---:|---|"
    jq -r '.results[] | "| \(.shape) | \(.reply_parser_median_mb_per_s) "
        + "| \(.base64_d_median_mb_per_s) | \(.speedup)x | \(.verdict) |"' "$out_dir/parse_bench.json"
    echo
    echo "$size_mb MB of base64, $runs alternating runs each;" \
        "MB/s of decoded bytes; target ${target}x."
} > "$out_dir/parse_bench.md"

cat "$out_dir/parse_bench.md"
if grep -q MISS "$out_dir/parse_bench.md"; then
    echo
    echo "MISS: ReplyParser is below the ${target}x target for at least one reply shape."
fi
