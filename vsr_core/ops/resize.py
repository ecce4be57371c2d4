"""Classical resizing: the bicubic baseline every learned upscaler is judged against."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import InputError


def bicubic_upscale(frames: torch.Tensor, scale: int) -> torch.Tensor:
    """Bicubic x`scale` of float frames [T,3,H,W] in 0..1 (PyTorch's a=-0.75 kernel)."""
    if scale not in (2, 4):
        raise InputError(f"scale={scale!r}; expected 2 or 4")
    out = F.interpolate(frames, scale_factor=scale, mode="bicubic", align_corners=False)
    return out.clamp_(0, 1)


def resize_frames(frames: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Frames [T,3,H,W] in 0..1 resized to height x width (bicubic, antialiased when shrinking)."""
    if tuple(frames.shape[-2:]) == (height, width):
        return frames
    shrink = height < frames.shape[-2] or width < frames.shape[-1]
    out = F.interpolate(frames, size=(height, width), mode="bicubic", align_corners=False, antialias=shrink)
    return out.clamp_(0, 1)
