"""The memory plan's estimate beside the measured peak RSS of real `upscale` runs (calibration).

    python benchmarks/bench_memory_plan.py [--runs 90x160:24:512:12,270x480:24:64:12,...] [--threads 1]

Each run is HxW:frames:tile:window, a fresh process (bench_memory.py's clip and measurement: a virtual
camera over a scikit-image photo written as FFV1, upscaled x4 to h264; peak RSS is the child's ru_maxrss).
The estimate is vsr_core.pipeline.memory_plan.estimate for the same settings; the plan's coefficients
should keep it at or above the measured peak without being far above it.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

from bench_memory import make_clip, peak_of_run  # noqa: E402
from vsr_core.machine import cpu_name, ram_bytes  # noqa: E402
from vsr_core.pipeline.memory_plan import estimate  # noqa: E402

DEFAULT_RUNS = ("90x160:24:512:12,180x320:24:512:12,270x480:24:512:12,270x480:24:512:6,"
                "270x480:24:64:12,270x480:24:64:6,540x960:10:128:4")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", default=DEFAULT_RUNS)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--only", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.only is None:       # each run in its own process, so ru_maxrss of children is that run's
        import subprocess
        print(f"machine: {cpu_name()}, {os.cpu_count()} logical CPUs, {ram_bytes()[1] / 2**30:.1f} GB RAM; "
              f"threads {args.threads}; x4, FFV1 in, h264 out")
        print(f"{'LR size':>9} {'frames':>6} {'tile':>5} {'window':>6} {'estimate MB':>12} {'peak RSS MB':>12} "
              f"{'ratio':>6} {'seconds':>8}")
        for run in args.runs.split(","):
            out = subprocess.run([sys.executable, os.path.abspath(__file__), "--threads", str(args.threads),
                                  "--only", run], capture_output=True, text=True, check=True).stdout.split()
            size, frames, tile, window = run.split(":")
            h, w = (int(v) for v in size.split("x"))
            est = estimate(h, w, 4, int(window), int(tile))[0] / 2**20
            mb, sec = float(out[0]), float(out[1])
            print(f"{size:>9} {frames:>6} {tile:>5} {window:>6} {est:>12.0f} {mb:>12.0f} {est / mb:>6.2f} "
                  f"{sec:>8.1f}", flush=True)
        return 0
    size, frames, tile, window = args.only.split(":")
    h, w = (int(v) for v in size.split("x"))
    overlap = str(min(2, (int(window) - 1) // 2))
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "in.mkv")
        make_clip(src, int(frames), (h, w))
        mb, sec = peak_of_run(["upscale", src, os.path.join(tmp, "out.mp4"), "--threads", str(args.threads),
                               "--tile", tile, "--window", window, "--overlap", overlap])
    print(f"{mb:.1f} {sec:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
