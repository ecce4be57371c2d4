"""Peak memory of `python -m vsr_core upscale` for a short and a long clip of the same size.

    python benchmarks/bench_memory.py [--size 180x320] [--short 24] [--long 240] [--method learned]

Each run is a fresh process; its peak resident memory comes from the kernel
(ru_maxrss of the finished child). The clips are made here: a virtual camera
over a scikit-image photo, written losslessly, so nothing is downloaded.
If the command line streams frames from decoder to encoder, the two peaks are
close (ratio near 1) whatever the clip length.
"""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from vsr_core.data import CameraPath, photo, virtual_camera_clip  # noqa: E402
from vsr_core.machine import cpu_name  # noqa: E402
from vsr_core.video import VideoWriter  # noqa: E402


def make_clip(path: str, frames: int, size: tuple[int, int]) -> None:
    image = photo("astronaut")
    with VideoWriter(path, 24, fmt="ffv1") as writer:
        for start in range(0, frames, 24):  # a long pan, written in windows
            n = min(24, frames - start)
            path_ = CameraPath(pan=(1.0, 0.5))
            clip = virtual_camera_clip(image, n, size, path_, start=(150 + start * 1.0, 150 + start * 0.5))
            writer.write(clip)


def peak_of_upscale(src: str, dst: str, method: str, threads: int) -> tuple[float, float]:
    """(peak RSS in MB, seconds) of one upscale run in a child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-m", "vsr_core", "upscale", src, dst, "--method", method,
                    "--threads", str(threads), "--overwrite"], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seconds = time.monotonic() - t0
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if peak <= before:
        raise RuntimeError("the child's peak did not exceed an earlier child's; run each size in its own process")
    return peak / 1024.0, seconds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="180x320", help="LR clip size HxW")
    ap.add_argument("--short", type=int, default=24)
    ap.add_argument("--long", type=int, default=240)
    ap.add_argument("--method", default="learned", choices=("learned", "bicubic"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--only", type=int, default=None, help=argparse.SUPPRESS)  # one size, for the child
    args = ap.parse_args()
    h, w = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        if args.only is not None:  # measure one clip length in this (fresh) process's children
            src = os.path.join(tmp, "in.mkv")
            make_clip(src, args.only, (h, w))
            mb, sec = peak_of_upscale(src, os.path.join(tmp, "out.mp4"), args.method, args.threads)
            print(f"{mb:.1f} {sec:.1f}")
            return 0
        rows = []
        for frames in (args.short, args.long):
            out = subprocess.run([sys.executable, os.path.abspath(__file__), "--size", args.size, "--method",
                                  args.method, "--threads", str(args.threads), "--only", str(frames)],
                                 capture_output=True, text=True, check=True).stdout.split()
            rows.append((frames, float(out[0]), float(out[1])))
    print(f"machine: {cpu_name()}, {os.cpu_count()} logical CPUs; threads {args.threads}")
    print(f"`python -m vsr_core upscale --method {args.method}`, {h}x{w} -> {4 * h}x{4 * w}, FFV1 in, h264 out")
    print(f"{'frames':>8} {'peak RSS (MB)':>14} {'seconds':>9} {'fps':>6}")
    for frames, mb, sec in rows:
        print(f"{frames:>8} {mb:>14.1f} {sec:>9.1f} {frames / sec:>6.2f}")
    print(f"peak ratio long/short: {rows[1][1] / rows[0][1]:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
