"""Picture of the cleaning knob: one held-out photo clip with Gaussian noise (sigma 8/255), x4 by
bicubic, by the shipped default with clean 0, auto and 1, and the ground truth (crops, middle frame).

    python benchmarks/figure_cleaning.py [--out docs/images/cleaning_knob.png]
"""
from __future__ import annotations

import argparse
import os
import sys

import cv2
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from vsr_core.checkpoints.shipped import load_default_upscaler  # noqa: E402
from vsr_core.data.clips import heldout_clips  # noqa: E402
from vsr_core.metrics import psnr_y  # noqa: E402
from vsr_core.models.upscaler import upscale_clip  # noqa: E402
from vsr_core.ops.resize import bicubic_upscale  # noqa: E402
from vsr_core.pipeline.cleaning import clip_level  # noqa: E402
from vsr_core.train.degradations import bi_downsample, quantize  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="docs/images/cleaning_knob.png")
    args = ap.parse_args()
    torch.set_num_threads(2)
    name = "skimage:coffee"
    hr = torch.from_numpy(heldout_clips(5, (256, 384), names=(name,))[name]).permute(0, 3, 1, 2).float() / 255
    lr = quantize(bi_downsample(hr, 4))
    g = torch.Generator().manual_seed(0)
    lr = quantize(lr + torch.randn(lr.shape, generator=g) * 8 / 255)
    model = load_default_upscaler(4)
    panels = [("bicubic", bicubic_upscale(lr, 4).clamp(0, 1))]
    for label, clean in (("clean 0", 0.0), ("auto", "auto"), ("clean 1", 1.0)):
        with torch.inference_mode():
            panels.append((label, upscale_clip(model, lr, level=clip_level(model, clean, lr))))
    panels.append(("ground truth", hr))
    frame, (y, x, s) = 2, (120, 60, 96)
    tiles = []
    for label, clip in panels:
        text = label if label == "ground truth" else f"{label} {psnr_y(clip, hr):.2f} dB"
        crop = (clip[frame, :, y:y + s, x:x + s].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        big = cv2.resize(crop, (2 * s, 2 * s), interpolation=cv2.INTER_NEAREST)
        bar = np.full((22, 2 * s, 3), 255, np.uint8)
        cv2.putText(bar, text, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        tiles += [np.concatenate([bar, big]), np.full((2 * s + 22, 4, 3), 255, np.uint8)]
    figure = np.concatenate(tiles[:-1], axis=1)
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    cv2.imwrite(args.out, cv2.cvtColor(figure, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    level = clip_level(model, "auto", lr)
    print(f"{args.out}: {figure.shape[1]}x{figure.shape[0]}; auto read noise {level[0]:.2f}, "
          f"compression {level[1]:.2f}, blur {level[2]:.2f}")


if __name__ == "__main__":
    main()
