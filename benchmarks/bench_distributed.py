"""`upscale --workers N` on a local Ray cluster: speed-up, identical frames, and a worker killed half way.

    python benchmarks/bench_distributed.py [--frames 96] [--workers 1,2]

96 frames of 320x180 (a virtual camera over a scikit-image photo) -> 1280x720
FFV1, one torch thread per worker, the command's default window (12, overlap 2).
The driver uses one torch thread. Prints seconds and frames per second per worker count, whether the frames are
identical, the measured seconds per window (the unit a cluster schedules), and
then kills one worker process half way through a 2-worker run and checks the
frames again. Multi-node: `ray start --head` on one machine, `ray start
--address HEAD:6379` on the others, then `upscale ... --workers N --ray-address auto`.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from vsr_core.data import CameraPath, photo, virtual_camera_clip  # noqa: E402
from vsr_core.jobs import distributed  # noqa: E402
from vsr_core.jobs.upscale import upscale_file  # noqa: E402
from vsr_core.machine import cpu_name, tune_allocator  # noqa: E402
from vsr_core.video import VideoWriter, open_video  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=96)
    ap.add_argument("--workers", default="1,2")
    args = ap.parse_args()
    ray = distributed.import_ray()
    tune_allocator()
    torch.set_num_threads(1)          # the driver only decodes, crossfades and encodes; the workers compute
    counts = [int(w) for w in args.workers.split(",")]
    ray.init(num_cpus=max(counts), include_dashboard=False, log_to_driver=False)
    print(f"{cpu_name()}, {os.cpu_count()} CPUs; local Ray cluster with {max(counts)} CPUs, 1 thread per worker")
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "in.mkv")
        clip = virtual_camera_clip(photo("astronaut"), args.frames, (180, 320), CameraPath(pan=(1.5, 0.4)))
        with VideoWriter(src, 24, fmt="ffv1") as w:
            w.write(clip)
        outputs, seconds = {}, {}
        print(f"\n{args.frames} frames 320x180 -> 1280x720\n\n| workers | seconds | frames/s | speed-up |\n|---|---|---|---|")
        for n in counts:
            dst = os.path.join(tmp, f"w{n}.mkv")
            t0 = time.perf_counter()
            upscale_file(src, dst, fmt="ffv1", workers=n, worker_threads=1)
            seconds[n] = time.perf_counter() - t0
            outputs[n] = open_video(dst).read_all()
            print(f"| {n} | {seconds[n]:.1f} | {args.frames / seconds[n]:.2f} | {seconds[counts[0]] / seconds[n]:.2f} |",
                  flush=True)
        same = all(np.array_equal(outputs[counts[0]], o) for o in outputs.values())
        windows = -(-(args.frames - 2) // 10)
        print(f"\nframes identical for every worker count: {same}; "
              f"{seconds[counts[0]] / windows:.2f} s per 12-frame window with one worker")
        real_collect, killed = distributed.RayPool.collect, []

        def collect_then_kill(self, handle):
            out = real_collect(self, handle)
            if len(killed) == 0 and self.next >= windows // 2:
                pid = ray.get(self.actors[-1].pid.remote())
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            return out
        distributed.RayPool.collect = collect_then_kill
        dst = os.path.join(tmp, "killed.mkv")
        t0 = time.perf_counter()
        upscale_file(src, dst, fmt="ffv1", workers=max(counts), worker_threads=1)
        frames = open_video(dst).read_all()
        print(f"worker process {killed[0] if killed else '?'} killed half way: job finished in "
              f"{time.perf_counter() - t0:.1f} s, frames identical: {np.array_equal(frames, outputs[counts[0]])}")
    ray.shutdown()


if __name__ == "__main__":
    main()
