#!/usr/bin/env bash
# Compares the pcm/ view's decoder (pcm_bench) with sox decoding the same recording
# to the same 16-bit samples, for a GSM 6.10, an A-law and a µ-law original made
# from espeak-ng speech. The two alternate run by run, each a process that reads
# the file and writes the samples to /dev/null, so drifts in machine load and
# process start-up hit both alike. Before timing, it checks that the two outputs are
# the same samples.
#
# usage: run_pcm_bench.sh [out-dir]        (default ./bench-out)
# env:   PCM_BENCH  path to the pcm_bench binary (default: looked up in the build tree)
#        MINUTES    length of each recording (default 30)
#        RUNS       runs of each side per format (default 5, at least 5)
#
# Writes pcm_bench.md and pcm_bench.json to out-dir. Exits 0 when the target is
# missed too (it says MISS); non-zero only when the benchmark itself fails.
set -euo pipefail

out_dir=${1:-./bench-out}
minutes=${MINUTES:-30}
runs=${RUNS:-5}
target=1.0  # time of ours / time of sox: the view must decode no slower than sox

if ((runs < 5)); then runs=5; fi

script=run_pcm_bench.sh
source "$(dirname "$0")/bench_lib.sh"
find_bench pcm_bench PCM_BENCH
need_tools sox soxi espeak-ng jq awk date cmp tail stat

mkdir -p "$out_dir"
make_work_dir

seconds_of() {  # COMMAND...: its wall time in seconds, its stdout to /dev/null
    local start end
    start=$(date +%s%N)
    "$@" > /dev/null
    end=$(date +%s%N)
    awk -v ns=$((end - start)) 'BEGIN { printf "%.4f", ns / 1e9 }'
}

espeak-ng -w "$work/speech.wav" "Thank you for calling. Your call may be recorded for quality \
and training purposes. Please hold while we connect you to the next available agent."
speech_s=$(soxi -D "$work/speech.wav")
repeats=$(awk -v m="$minutes" -v s="$speech_s" 'BEGIN { r = int(m * 60 / s); print (r < 1 ? 0 : r - 1) }')

results=()
for format in gsm alaw ulaw; do
    case $format in
        gsm) encoding=gsm-full-rate ;;
        alaw) encoding=a-law ;;
        ulaw) encoding=u-law ;;
    esac
    original=$work/$format.wav
    sox -V1 "$work/speech.wav" -r 8000 -c 1 -e "$encoding" "$original" repeat "$repeats"

    # The same samples, or the comparison means nothing.
    "$bench" "$original" --output "$work/view.wav" > /dev/null
    sox -V1 "$original" -t raw -e signed -b 16 -L - > "$work/sox.raw"
    tail -c +45 "$work/view.wav" | cmp -s - "$work/sox.raw" ||
        { echo "run_pcm_bench.sh: the view of $format differs from sox's decode" >&2; exit 1; }
    view_bytes=$(stat -c %s "$work/view.wav")
    rm -f "$work/view.wav" "$work/sox.raw"

    ours=()
    theirs=()
    for ((run = 1; run <= runs; ++run)); do
        ours+=("$(seconds_of "$bench" "$original")")
        theirs+=("$(seconds_of sox -V1 "$original" -t raw -e signed -b 16 -L -)")
        echo "$format run $run: pcm_bench ${ours[-1]} s, sox ${theirs[-1]} s" >&2
    done
    ours_median=$(printf '%s\n' "${ours[@]}" | median)
    theirs_median=$(printf '%s\n' "${theirs[@]}" | median)
    ratio=$(awk -v a="$ours_median" -v b="$theirs_median" 'BEGIN { printf "%.2f", a / b }')
    if awk -v r="$ratio" -v t="$target" 'BEGIN { exit !(r <= t) }'; then
        verdict=PASS
    else
        verdict="MISS (target ≤ ${target}x)"
    fi
    results+=("$(jq -n \
        --arg format "$format" --arg verdict "$verdict" \
        --argjson original_bytes "$(stat -c %s "$original")" --argjson view_bytes "$view_bytes" \
        --argjson ours "$(printf '%s\n' "${ours[@]}" | jq -s .)" \
        --argjson theirs "$(printf '%s\n' "${theirs[@]}" | jq -s .)" \
        --argjson ours_median "$ours_median" --argjson theirs_median "$theirs_median" \
        --argjson ratio "$ratio" --arg ratio_text "$ratio" --argjson target "$target" \
        '{format: $format, original_bytes: $original_bytes, view_bytes: $view_bytes,
          pcm_bench_s: $ours, sox_s: $theirs,
          pcm_bench_median_s: $ours_median, sox_median_s: $theirs_median,
          ratio: $ratio, ratio_text: $ratio_text, target_ratio: $target, verdict: $verdict}')")
    rm -f "$original"
done

printf '%s\n' "${results[@]}" | jq -s \
    --argjson minutes "$minutes" --argjson runs "$runs" \
    --arg cpu "$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2> /dev/null || true)" \
    --arg sox "$(sox --version 2>&1 | head -n 1)" \
    --arg reference "sox F -t raw -e signed -b 16 -L - > /dev/null" \
    --arg ours "pcm_bench F > /dev/null (writes the view to /dev/null)" \
    '{minutes: $minutes, runs: $runs, cpu: $cpu, sox: $sox, reference: $reference, ours: $ours,
      results: .}' > "$out_dir/pcm_bench.json"

{
    echo "| original | size | pcm_bench median | sox median | ratio | verdict |"
    echo "|---|---:|---:|---:|---:|---|"
    jq -r '.results[] | "| \(.format) | \(.original_bytes / 1e6 * 10 | floor / 10) MB "
        + "| \(.pcm_bench_median_s) s | \(.sox_median_s) s | \(.ratio_text)x | \(.verdict) |"' \
        "$out_dir/pcm_bench.json"
    echo
    echo "$minutes minutes of 8 kHz speech each, $runs alternating runs;" \
        "wall time of the whole process, ours / sox's; target ≤ ${target}x."
} > "$out_dir/pcm_bench.md"

cat "$out_dir/pcm_bench.md"
if grep -q MISS "$out_dir/pcm_bench.md"; then
    echo
    echo "MISS: the pcm/ view decodes slower than sox for at least one format."
fi
