"""`upscale`/`restore --workers N` on a local Ray cluster: speed-up, identical frames, a worker killed half way.

    python benchmarks/bench_distributed.py [--job upscale] [--frames 96] [--size 180x320] [--workers 1,2]
    python benchmarks/bench_distributed.py --job restore --frames 24 --size 48x80 --steps 10

upscale: 96 frames of 320x180 (a virtual camera over a scikit-image photo) ->
1280x720 FFV1, one torch thread per worker, the command's default window (12,
overlap 2). restore: the whole diffusion graph with its default segments (16,
overlap 2) sampled independently (the mode of `restore --workers`), shipped
weights. The driver uses one torch thread. Prints seconds and frames per second per worker count, whether the frames are
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
from vsr_core.jobs.restore import restore_file  # noqa: E402
from vsr_core.jobs.upscale import upscale_file  # noqa: E402
from vsr_core.pipeline.guided_sample import SampleSettings  # noqa: E402
from vsr_core.pipeline.restore_video import RestoreSettings  # noqa: E402
from vsr_core.machine import cpu_name, tune_allocator  # noqa: E402
from vsr_core.video import VideoWriter, open_video  # noqa: E402
from vsr_core.pipeline.upscale_settings import UpscaleSettings  # noqa: E402
from vsr_core.jobs.job_settings import JobSettings  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--job", default="upscale", choices=("upscale", "restore"))
    ap.add_argument("--frames", type=int, default=96)
    ap.add_argument("--size", default="180x320", help="LR size HxW")
    ap.add_argument("--steps", type=int, default=20, help="restore: sampling steps")
    ap.add_argument("--workers", default="1,2")
    args = ap.parse_args()
    h, w = (int(v) for v in args.size.split("x"))
    if args.job == "upscale":
        segment, overlap = 12, 2

        def job(src, dst, workers):
            upscale_file(src, dst, UpscaleSettings(), JobSettings(format="ffv1", workers=workers, threads=1))
    else:
        settings = RestoreSettings(sample=SampleSettings(steps=args.steps), seams="independent")
        segment, overlap = settings.segment, settings.segment_overlap

        def job(src, dst, workers):
            restore_file(src, dst, settings, JobSettings(format="ffv1", workers=workers, threads=1))
    ray = distributed.import_ray()
    tune_allocator()
    torch.set_num_threads(1)          # the driver only decodes, crossfades and encodes; the workers compute
    counts = [int(w) for w in args.workers.split(",")]
    ray.init(num_cpus=max(counts), include_dashboard=False, log_to_driver=False)
    print(f"{cpu_name()}, {os.cpu_count()} CPUs; local Ray cluster with {max(counts)} CPUs, 1 thread per worker")
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "in.mkv")
        clip = virtual_camera_clip(photo("astronaut"), args.frames, (h, w), CameraPath(pan=(1.5, 0.4)))
        with VideoWriter(src, 24, fmt="ffv1") as writer:
            writer.write(clip)
        outputs, seconds = {}, {}
        print(f"\n{args.job}: {args.frames} frames {w}x{h} -> {4 * w}x{4 * h}\n\n| workers | seconds | frames/s | speed-up |\n|---|---|---|---|")
        for n in counts:
            dst = os.path.join(tmp, f"w{n}.mkv")
            t0 = time.perf_counter()
            job(src, dst, n)
            seconds[n] = time.perf_counter() - t0
            outputs[n] = open_video(dst).read_all()
            print(f"| {n} | {seconds[n]:.1f} | {args.frames / seconds[n]:.2f} | {seconds[counts[0]] / seconds[n]:.2f} |",
                  flush=True)
        same = all(np.array_equal(outputs[counts[0]], o) for o in outputs.values())
        windows = -(-(args.frames - overlap) // (segment - overlap))
        print(f"\nframes identical for every worker count: {same}; "
              f"{seconds[counts[0]] / windows:.2f} s per {segment}-frame segment with one worker")
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
        job(src, dst, max(counts))
        frames = open_video(dst).read_all()
        print(f"worker process {killed[0] if killed else '?'} killed half way: job finished in "
              f"{time.perf_counter() - t0:.1f} s, frames identical: {np.array_equal(frames, outputs[counts[0]])}")
    ray.shutdown()


if __name__ == "__main__":
    main()
