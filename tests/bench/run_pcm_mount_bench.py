#!/usr/bin/env python3
"""The pcm/ view through the mount (issue 15), against `sox F -t raw -` in the same run.

run_pcm_bench.sh times the decoder library alone; this reads the view as a user
would, through the real mount.euphoria on a real FUSE mount and the mock API over TLS
on loopback (the end-to-end tests' harness). For each of GSM 6.10, A-law and mu-law
originals of MINUTES minutes of espeak-ng speech, alternating run by run:

  warm  `cat pcm/NAME > /dev/null` with NAME just read (the original cached: the
        decode and the FUSE reads of the view)
        vs `sox F -t raw -e signed -b 16 -L - > /dev/null` of the same original in a
        local file                                      target <= 1.0x
  cold  `cat pcm/NAME > /dev/null` of a name not read yet (download + decode)
        vs `cat NAME > /dev/null` of another cold name (the download alone)
                                                        reported, no target

Each run uses a name of its own, so nothing is served from an earlier run's cache.
The view's bytes are first checked against sox's decode.

    sudo tests/bench/run_pcm_mount_bench.py --binary BUILD/mount.euphoria [--minutes 10]
        [--runs 5] [--out bench-out]

Writes OUT/pcm_mount_bench.md and .json. Exit status 0 when it ran (MISS included),
1 when the harness failed.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))

import harness  # noqa: E402

TEXT = ("Thank you for calling. Your call may be recorded for quality and training purposes. "
        "Please hold while we connect you to the next available agent.")
ENCODINGS = {"gsm": "gsm-full-rate", "alaw": "a-law", "ulaw": "u-law"}
SOX_RAW = ["-t", "raw", "-e", "signed", "-b", "16", "-L", "-"]


def timed(argv):
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--out", default="bench-out")
    args = ap.parse_args()
    harness.BINARY = os.path.abspath(args.binary)
    harness.check_prerequisites()
    os.makedirs(args.out, exist_ok=True)
    work = tempfile.mkdtemp(prefix="pcm-mount-bench-")
    mock = harness.Mock()
    mount = None
    rows = []
    try:
        speech = os.path.join(work, "speech.wav")
        subprocess.run(["espeak-ng", "-w", speech, TEXT], check=True)
        seconds = float(subprocess.run(["soxi", "-D", speech], check=True, capture_output=True,
                                       text=True).stdout)
        repeats = max(int(args.minutes * 60 / seconds) - 1, 0)
        # A disk tier large enough for every run's original and view.
        mount = harness.Mount(mock, ("cache_size=2G", "mem_cache_size=256M"))
        for fmt, encoding in ENCODINGS.items():
            original = os.path.join(work, fmt + ".wav")
            subprocess.run(["sox", "-V1", speech, "-r", "8000", "-c", "1", "-e", encoding, original,
                            "repeat", str(repeats)], check=True)
            with open(original, "rb") as f:
                data = f.read()
            names = {kind: ["pbx4-1600000000.1-%s-%s-%d.WAV" % (fmt, kind, i) for i in range(args.runs + 1)]
                     for kind in ("warm", "cold", "coldorig")}
            for group in names.values():
                for n in group:
                    mock.add(n, data)
            sox_raw = subprocess.run(["sox", "-V1", original, *SOX_RAW], check=True,
                                     capture_output=True).stdout
            with open(mount.path("pcm/" + names["warm"][-1]), "rb") as f:
                view = f.read()
            if view[44:] != sox_raw:
                raise AssertionError("the view of %s differs from sox's decode" % fmt)
            warm, sox, cold, cold_orig = [], [], [], []
            for i in range(args.runs):
                with open(mount.path(names["warm"][i]), "rb") as f:
                    f.read()
                warm.append(timed(["cat", mount.path("pcm/" + names["warm"][i])]))
                sox.append(timed(["sox", "-V1", original, *SOX_RAW]))
                cold.append(timed(["cat", mount.path("pcm/" + names["cold"][i])]))
                cold_orig.append(timed(["cat", mount.path(names["coldorig"][i])]))
                print("%s run %d: warm view %.3f s, sox %.3f s, cold view %.3f s, cold original %.3f s"
                      % (fmt, i + 1, warm[-1], sox[-1], cold[-1], cold_orig[-1]), file=sys.stderr)
            row = {"format": fmt, "original_bytes": len(data), "view_bytes": len(view),
                   "warm_view_s": warm, "sox_s": sox, "cold_view_s": cold, "cold_original_s": cold_orig}
            for k in ("warm_view_s", "sox_s", "cold_view_s", "cold_original_s"):
                row[k + "_median"] = statistics.median(row[k])
            row["warm_ratio"] = row["warm_view_s_median"] / row["sox_s_median"]
            row["cold_ratio"] = row["cold_view_s_median"] / row["cold_original_s_median"]
            row["view_mb_per_s"] = len(view) / 1e6 / row["warm_view_s_median"]
            row["verdict"] = "PASS" if row["warm_ratio"] <= 1.0 else "MISS (target <= 1.0x)"
            rows.append(row)
            os.unlink(original)
    finally:
        if mount:
            mount.close()
        mock.close()
        shutil.rmtree(work, ignore_errors=True)
    with open(os.path.join(args.out, "pcm_mount_bench.json"), "w") as f:
        json.dump({"minutes": args.minutes, "runs": args.runs, "results": rows}, f, indent=2)
    lines = ["| original | size | warm `cat pcm/NAME` | `sox F -t raw -` | ratio | view MB/s "
             "| cold `cat pcm/NAME` | cold `cat NAME` | cold ratio | verdict |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        lines.append("| %s | %.1f MB | %.3f s | %.3f s | %.2fx | %.0f | %.3f s | %.3f s | %.2fx | %s |" % (
            r["format"], r["original_bytes"] / 1e6, r["warm_view_s_median"], r["sox_s_median"],
            r["warm_ratio"], r["view_mb_per_s"], r["cold_view_s_median"], r["cold_original_s_median"],
            r["cold_ratio"], r["verdict"]))
    lines.append("")
    lines.append("%g minutes of 8 kHz speech each, %d alternating runs, medians." % (args.minutes, args.runs))
    with open(os.path.join(args.out, "pcm_mount_bench.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:  # the harness failed: a report of no use
        print("run_pcm_mount_bench.py: %s" % e, file=sys.stderr)
        sys.exit(1)
