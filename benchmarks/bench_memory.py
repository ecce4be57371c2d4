"""Peak memory of the streaming commands for short and long clips, and at several sizes.

    python benchmarks/bench_memory.py [--command upscale|restore] [--sizes 180x320] [--frames 24,240]
                                      [--method learned] [--steps 1] [--segment 16] [-- more options]

Options after `--` go to the command (e.g. `-- --tile 128`).

Each run is a fresh process; its peak resident memory comes from the kernel
(ru_maxrss of the finished child). The clips are made here: a virtual camera
over a scikit-image photo, written losslessly, so nothing is downloaded.
`upscale` is the fast path; `restore` the full diffusion graph (shipped tiny
weights; memory does not depend on the number of steps, so --steps 1 keeps it
short). If the commands stream frames from decoder to encoder, the peaks for a
short and a long clip are close (ratio near 1) whatever the clip length.
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


def peak_of_run(command: list[str]) -> tuple[float, float]:
    """(peak RSS in MB, seconds) of one command in a child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-m", "vsr_core", *command], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seconds = time.monotonic() - t0
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if peak <= before:
        raise RuntimeError("the child's peak did not exceed an earlier child's; run each size in its own process")
    return peak / 1024.0, seconds


def command_for(args, src: str, dst: str) -> list[str]:
    common = [src, dst, "--threads", str(args.threads), "--overwrite", *args.extra]
    if args.command == "upscale":
        return ["upscale", *common, "--method", args.method]
    return ["restore", *common, "--steps", str(args.steps), "--segment", str(args.segment)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--command", default="upscale", choices=("upscale", "restore"))
    ap.add_argument("--sizes", default="180x320", help="LR clip sizes HxW, comma-separated")
    ap.add_argument("--frames", default="24,240", help="clip lengths, comma-separated")
    ap.add_argument("--method", default="learned", choices=("learned", "bicubic"), help="upscale only")
    ap.add_argument("--steps", type=int, default=1, help="restore only")
    ap.add_argument("--segment", type=int, default=16, help="restore only")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--only", default=None, help=argparse.SUPPRESS)  # "HxW:frames", for the child
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)
    own, extra = argv[:split], argv[split + 1:]
    args = ap.parse_args(own)
    args.extra = extra
    if args.only is not None:  # measure one clip in this (fresh) process's child
        size, frames = args.only.split(":")
        h, w = (int(v) for v in size.split("x"))
        with tempfile.TemporaryDirectory() as tmp:
            src = os.path.join(tmp, "in.mkv")
            make_clip(src, int(frames), (h, w))
            mb, sec = peak_of_run(command_for(args, src, os.path.join(tmp, "out.mp4")))
        print(f"{mb:.1f} {sec:.1f}")
        return 0
    rows = []
    for size in args.sizes.split(","):
        for frames in (int(f) for f in args.frames.split(",")):
            out = subprocess.run([sys.executable, os.path.abspath(__file__), *own, "--only", f"{size}:{frames}",
                                  "--", *extra],
                                 capture_output=True, text=True, check=True).stdout.split()
            rows.append((size, frames, float(out[0]), float(out[1])))
            print(f"  measured {size} x {frames} frames: {out[0]} MB, {out[1]} s", file=sys.stderr)
    what = (f"upscale --method {args.method}" if args.command == "upscale"
            else f"restore --steps {args.steps} --segment {args.segment}")
    print(f"machine: {cpu_name()}, {os.cpu_count()} logical CPUs; threads {args.threads}")
    print(f"`python -m vsr_core {what} {' '.join(args.extra)}`, x4, FFV1 in, h264 out")
    print(f"{'LR size':>10} {'output':>10} {'frames':>7} {'peak RSS (MB)':>14} {'seconds':>9} {'fps':>7}")
    for size, frames, mb, sec in rows:
        h, w = (int(v) for v in size.split("x"))
        print(f"{size:>10} {f'{4 * h}x{4 * w}':>10} {frames:>7} {mb:>14.1f} {sec:>9.1f} {frames / sec:>7.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
