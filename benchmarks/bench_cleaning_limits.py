"""What limits the cleaning knob: how clean the LR cleaning stage gets h264 input, and how soft scenes are read.

    python benchmarks/bench_cleaning_limits.py --real-videos DIR [--split val] [--mixes 0.1,0.25,0.5,1]

1. **The cleaning stage.** On each clip of a prepared real-videos folder (first ``--frames`` frames, centre
   crop <= ``--max-side``, x4; clean bicubic and bicubic + h264 CRF 30, the trainer's protocol), the shipped
   upscaler runs with ``clean`` auto, and again with its cleaning stage's output replaced by a mix moved a
   share ``a`` of the way to the clean bicubic LR frames (``a`` = 1: the clean frames themselves, which no
   real input comes with). Prints the Y error (RMS, code values) of the input and of the cleaning stage's
   output against the clean LR frames, and the PSNR-Y gain over bicubic for each ``a``: how much a better
   LR cleaning stage would be worth, with the rest of the network as it is.
2. **Soft scenes.** The held-out photo clips (coffee, rocket, cell) with the scene itself softened (Gaussian
   sigma 0, 2, 4 at HR before the bicubic x4 downsampling, so the input is clean): the level ``auto`` reads
   (noise, compression, blur) and the gain with auto, with clean 0 and with the all-zero level.

``--split val`` (default) keeps the benchmark's held-out videos out of the investigation.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys

import numpy as np
import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from vsr_core.checkpoints.shipped import load_default_upscaler, load_upscaler  # noqa: E402
from vsr_core.data.clips import heldout_clips  # noqa: E402
from vsr_core.machine import cpu_name  # noqa: E402
from vsr_core.metrics import psnr_y, rgb_to_y  # noqa: E402
from vsr_core.models.upscaler import clip_flows  # noqa: E402
from vsr_core.ops.resize import bicubic_upscale  # noqa: E402
from vsr_core.pipeline.cleaning import clip_level  # noqa: E402
from vsr_core.train.degradations import bi_downsample, gaussian_blur, quantize  # noqa: E402
from vsr_core.train.real_eval import degrade_case, real_hr_clips  # noqa: E402

PHOTO_CLIPS = ("skimage:coffee", "skimage:rocket", "skimage:cell")


class FixedFrames(nn.Module):
    """Stands in for the cleaning stage: returns the given LR frames whatever it is given."""

    def __init__(self, frames: torch.Tensor):
        super().__init__()
        self.frames = frames

    def forward(self, x, film=None, frames: int = 1):
        return self.frames.reshape(x.shape)


@contextlib.contextmanager
def cleaning_stage_replaced(model, frames: torch.Tensor):
    kept = model.cleaner
    model.cleaner = FixedFrames(frames)
    try:
        yield model
    finally:
        model.cleaner = kept


def y_rms(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(((rgb_to_y(a * 255) - rgb_to_y(b * 255)) ** 2).mean().sqrt())


@torch.inference_mode()
def cleaning_stage_rows(model, hr: torch.Tensor, case: str, mixes) -> dict:
    lr = degrade_case(hr, case, model.scale)
    truth = quantize(bi_downsample(hr, model.scale))
    bicubic = psnr_y(bicubic_upscale(lr, model.scale).clamp(0, 1), hr)
    ff, fb = clip_flows(lr)
    level = clip_level(model, "auto", lr, ff)           # the windows' flows, as the pipeline reads the level
    out, cleaned = model(lr[None], ff[None], fb[None], level=level, return_clean=True)
    row = {"input Y error": y_rms(lr, truth), "cleaned Y error": y_rms(cleaned[0], truth),
           "auto": psnr_y(out[0].clamp(0, 1), hr) - bicubic}
    for a in mixes:
        mixed = cleaned[0] + a * (truth - cleaned[0])
        with cleaning_stage_replaced(model, mixed):
            out = model(lr[None], ff[None], fb[None], level=level)[0].clamp(0, 1)
        row[f"a={a:g}"] = psnr_y(out, hr) - bicubic
    return row


@torch.inference_mode()
def soft_scene_rows(model, frames: int, sigmas) -> None:
    print("\n### Soft scenes (clean bicubic x4 input): level read and gain over bicubic (dB)\n")
    print("| clip | scene blur sigma | level read | auto | clean 0 | all-zero level |\n|---|---|---|---|---|---|")
    for name, clip in heldout_clips(frames, (256, 384), PHOTO_CLIPS).items():
        sharp = torch.from_numpy(clip).permute(0, 3, 1, 2).float() / 255
        for sigma in sigmas:
            hr = gaussian_blur(sharp, sigma, 2 * int(3 * sigma) + 1) if sigma > 0 else sharp
            lr = quantize(bi_downsample(hr, model.scale))
            bicubic = psnr_y(bicubic_upscale(lr, model.scale).clamp(0, 1), hr)
            ff, fb = clip_flows(lr)
            auto = clip_level(model, "auto", lr, ff)
            gains = []
            for level in (auto, clip_level(model, 0.0, lr, ff), torch.zeros(3)):
                gains.append(psnr_y(model(lr[None], ff[None], fb[None], level=level)[0].clamp(0, 1), hr) - bicubic)
            read = ", ".join(f"{v:.2f}" for v in auto)
            print(f"| {name} | {sigma:g} | {read} | " + " | ".join(f"{g:+.2f}" for g in gains) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--real-videos", required=True, help="folder made by `python -m vsr_core prepare-real-videos`")
    ap.add_argument("--split", default="val", choices=("val", "heldout"))
    ap.add_argument("--weights", default=None, help="upscaler weights with a cleaning stage (default: shipped)")
    ap.add_argument("--frames", type=int, default=10)
    ap.add_argument("--max-side", type=int, default=344)
    ap.add_argument("--mixes", default="0.1,0.25,0.5,1", help="shares of the way to the clean LR frames")
    ap.add_argument("--blur-sigmas", default="0,2,4", help="scene softening of the photo clips (HR sigma)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = (load_upscaler(args.weights) if args.weights else load_default_upscaler(4)).eval()
    if model.cleaner is None or model.level_estimator is None:
        raise SystemExit("these weights have no cleaning stage or no degradation input; expected the shipped default")
    mixes = [float(a) for a in args.mixes.split(",") if a]
    clips = real_hr_clips(args.real_videos, args.frames, args.max_side, split=args.split)
    print(f"{len(clips)} {args.split} clips, {args.frames} frames, HR crop <= {args.max_side}px, x4; "
          f"{cpu_name()}, {args.threads} thread(s)")
    for case in ("bi", "h264_crf30"):
        rows = [cleaning_stage_rows(model, hr, case, mixes) for hr in clips.values()]
        print(f"\n### {case}: the cleaning stage's output moved a share a of the way to the clean LR frames\n")
        print("| | mean | worst clip |\n|---|---|---|")
        for key in rows[0]:
            values = [r[key] for r in rows]
            error = "error" in key            # the worst clip has the largest error, the smallest gain
            unit = "code values" if error else "dB over bicubic"
            print(f"| {key} ({unit}) | {np.mean(values):+.3f} | {max(values) if error else min(values):+.3f} |")
    soft_scene_rows(model, args.frames, [float(s) for s in args.blur_sigmas.split(",") if s])


if __name__ == "__main__":
    main()
