"""Do segment seams show? `restore` over a clip in one segment against the same clip in short segments,
with the guidance anchor carried across seams (one process) and with independent segments (the mode of
`restore --workers`).

    python benchmarks/bench_seams.py [--frames 24] [--size 128x192] [--segment 8] [--steps 20]

A held-out photo (coffee) filmed by a virtual camera, BI x4 degraded, restored by
`python -m vsr_core restore`'s pipeline three times: in one segment, in segments of
--segment frames (overlap 2) with carried seams, and in the same segments sampled
independently (seams="independent", what every Ray worker count runs). Printed:
PSNR-Y of each against the ground truth, PSNR-Y of each segmented run against the
one-segment run, and the warping error (x1000, on the ground-truth clip's DIS flow,
non-occluded pixels) of the frame pairs that straddle a segment seam against the pairs
that do not. If seams showed, the segmented runs' seam pairs would flicker more than
their other pairs and than the one-segment run's.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from vsr_core.data import CameraPath, photo, virtual_camera_clip  # noqa: E402
from vsr_core.flow import DISFlow, occlusion_masks  # noqa: E402
from vsr_core.machine import cpu_name  # noqa: E402
from vsr_core.metrics import psnr_y, warping_error  # noqa: E402
from vsr_core.pipeline.guided_sample import SampleSettings  # noqa: E402
from vsr_core.jobs.restore import restore_file  # noqa: E402
from vsr_core.checkpoints.restore_models import load_restore_models  # noqa: E402
from vsr_core.jobs.job_settings import JobSettings  # noqa: E402
from vsr_core.pipeline.restore_video import RestoreSettings  # noqa: E402
from vsr_core.train.degradations import degrade  # noqa: E402
from vsr_core.video import VideoWriter, open_video  # noqa: E402
from vsr_core.ops.frames import float_to_uint8, tchw_to_thwc  # noqa: E402


def pair_errors(frames: torch.Tensor, forward: torch.Tensor, valid: torch.Tensor) -> list[float]:
    """Warping error x1000 of each consecutive pair."""
    return [1000 * warping_error(frames[i:i + 2], forward[i:i + 1], valid[i:i + 1]) for i in range(len(forward))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--size", default="128x192", help="HR size HxW (LR = size / 4)")
    ap.add_argument("--segment", type=int, default=8)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    h, w = (int(v) for v in args.size.split("x"))
    hr_np = virtual_camera_clip(photo("coffee"), args.frames, (h, w), CameraPath(pan=(2.0, 1.0), zoom=1.003))
    hr = torch.from_numpy(hr_np).permute(0, 3, 1, 2).float() / 255
    lr = degrade(hr, "bi", 4)
    flow = DISFlow("medium")
    forward, backward = flow(hr[:-1], hr[1:]), flow(hr[1:], hr[:-1])
    occluded, _ = occlusion_masks(forward, backward)
    valid = 1 - occluded

    models = load_restore_models()
    base = RestoreSettings(sample=SampleSettings(steps=args.steps))
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "lr.mkv")
        with VideoWriter(src, 24, fmt="ffv1") as writer:
            writer.write(float_to_uint8(tchw_to_thwc(lr)))
        for name, segment, seams in (("one segment", args.frames, "carried"),
                                     (f"segments of {args.segment}", args.segment, "carried"),
                                     (f"{args.segment}, independent", args.segment, "independent")):
            out = os.path.join(tmp, f"{segment}-{seams}.mkv")
            restore_file(src, out, dataclasses.replace(base, segment=segment, seams=seams), JobSettings(format="ffv1"),
                         models)
            runs[name] = torch.from_numpy(open_video(out).read_all()).permute(0, 3, 1, 2).float() / 255

    stride = args.segment - base.segment_overlap
    # Pairs (i, i+1) whose frames come from different segments or from a crossfaded overlap.
    seam = sorted({i for s in range(stride, args.frames, stride) for i in range(s - 1, s + base.segment_overlap)
                   if i < args.frames - 1})
    other = [i for i in range(args.frames - 1) if i not in seam]
    print(f"machine: {cpu_name()}, {os.cpu_count()} logical CPUs; torch {torch.__version__}, {args.threads} thread(s)")
    print(f"clip: coffee, {args.frames} frames {h // 4}x{w // 4} -> {h}x{w}, BI x4; restore defaults, DDPM "
          f"{args.steps} steps; segmented run: segment {args.segment}, overlap {base.segment_overlap}")
    print(f"\n{'run':<22} {'PSNR-Y':>7} {'E_warp seam pairs':>18} {'E_warp other pairs':>19}")
    for name, frames in runs.items():
        errors = np.array(pair_errors(frames, forward, valid))
        print(f"{name:<22} {psnr_y(frames, hr):>7.2f} {errors[seam].mean():>18.3f} {errors[other].mean():>19.3f}")
    gt = np.array(pair_errors(hr, forward, valid))
    print(f"{'ground truth':<22} {'-':>7} {gt[seam].mean():>18.3f} {gt[other].mean():>19.3f}")
    whole, *segmented = runs.values()
    print(f"\nseam pairs: {seam}")
    for name, frames in zip(list(runs)[1:], segmented):
        print(f"PSNR-Y of '{name}' against 'one segment': {psnr_y(frames, whole):.2f} dB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
