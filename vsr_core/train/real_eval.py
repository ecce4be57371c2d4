"""Validation on real videos never seen in training (whole videos): clean, h264 and blur-downsampled input.

The prepared folder's 'val' split when it has one (made with ``prepare-real-videos --validation-share``),
so checkpoints can be compared without touching the benchmark's held-out clips; otherwise the held-out
clips themselves (then for monitoring only), and the metric names say which: ``real_val/...`` or ``real/...``.

Mild and heavy cases are reported separately: a model can win on heavy
degradations while losing to bicubic on clean input, which is what most real
footage is (docs/upscaler.md has both for the shipped weights).
"""
from __future__ import annotations

import numpy as np
import torch

from ..data.real_videos import RealVideoClips, load_manifest, split_ids
from .codec import codec_roundtrip
from .degradations import bd_downsample, bi_downsample, quantize

CASES = ("bi", "h264_crf30", "bd")


def validation_split(cache_dir: str) -> str:
    """'val' when the prepared folder has a validation split, else 'heldout'."""
    return "val" if split_ids(load_manifest(cache_dir), "val") else "heldout"


def real_hr_clips(cache_dir: str, frames: int = 8, max_side: int = 256,
                  split: str = "heldout") -> dict[str, torch.Tensor]:
    """{clip id: HR [T,3,H,W] float} - the first ``frames`` frames, centre crop, sides divisible by 4."""
    data = RealVideoClips(cache_dir, split)
    out = {}
    for clip in data.clips:
        arr = data.frames(clip)[:frames]
        h, w = arr.shape[1:3]
        ch, cw = min(h, max_side) // 4 * 4, min(w, max_side) // 4 * 4
        y, x = (h - ch) // 2, (w - cw) // 2
        crop = np.array(arr[:, y:y + ch, x:x + cw])     # a copy: the memory-mapped clip is read-only
        out[clip["id"]] = torch.from_numpy(crop).permute(0, 3, 1, 2).float() / 255.0
    return out


def degrade_case(hr: torch.Tensor, case: str, scale: int) -> torch.Tensor:
    if case == "bd":          # the blur-downsampling protocol: Gaussian sigma 1.6, every 4th pixel
        return quantize(bd_downsample(hr, scale))
    lr = quantize(bi_downsample(hr, scale))
    if case == "bi":
        return lr
    if case == "h264_crf30":
        return quantize(codec_roundtrip(lr, "libx264", crf=30))
    raise ValueError(f"unknown case {case!r}; expected one of {CASES}")


@torch.no_grad()
def evaluate_real_videos(model, cache_dir: str, frames: int = 8) -> dict:
    """Mean PSNR-Y gain over bicubic per case, and the worst clip's gain, on ``validation_split``'s clips."""
    from ..metrics import psnr_y
    from ..models.upscaler import upscale_clip
    from ..ops.resize import bicubic_upscale
    was = model.training
    model.eval()
    res = {}
    split = validation_split(cache_dir)
    prefix = "real_val" if split == "val" else "real"
    clips = real_hr_clips(cache_dir, frames, split=split)
    for case in CASES:
        gains = []
        for hr in clips.values():
            lr = degrade_case(hr, case, model.scale)
            gains.append(psnr_y(upscale_clip(model, lr), hr) - psnr_y(bicubic_upscale(lr, model.scale), hr))
        res[f"{prefix}/{case}/gain_db"] = round(float(np.mean(gains)), 3)
        res[f"{prefix}/{case}/worst_gain_db"] = round(float(np.min(gains)), 3)
    model.train(was)
    return res
