"""Classical resizing: the bicubic baseline every learned upscaler is judged against."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import InputError

BICUBIC_A = -0.75   # PyTorch's (and OpenCV's) bicubic kernel


def _cubic_weight(d: float) -> float:
    d, a = abs(d), BICUBIC_A
    if d <= 1:
        return ((a + 2) * d - (a + 3)) * d * d + 1
    if d < 2:
        return ((a * d - 5 * a) * d + 8 * a) * d - 4 * a
    return 0.0


def bicubic_phase_kernel(scale: int) -> torch.Tensor:
    """[scale, 5] taps (offsets -2..2) giving output phase p of a bicubic x`scale` upsampling
    (align_corners=False): output pixel scale*i+p samples the input at i + (p+0.5)/scale - 0.5."""
    k = torch.zeros(scale, 5, dtype=torch.float64)
    for p in range(scale):
        d = (p + 0.5) / scale - 0.5
        base = -1 if d < 0 else 0        # floor of the sampling position, relative to i
        t = d - base
        for j, dist in zip(range(-1, 3), (t + 1, t, 1 - t, 2 - t)):
            k[p, base + j + 2] += _cubic_weight(dist)
    return k


def bicubic_phases(frames: torch.Tensor, scale: int) -> torch.Tensor:
    """Bicubic x`scale` of [N,C,H,W] as its scale**2 phases [N,C*scale**2,H,W] at input resolution,
    so that ``pixel_shuffle(bicubic_phases(x, s), s)`` equals ``interpolate(x, scale_factor=s, mode="bicubic")``.

    A network that adds its own phases before the pixel shuffle then skips a pass over the
    full-resolution output (about 2x cheaper here than interpolate + add at 720p)."""
    c = frames.shape[1]
    k = bicubic_phase_kernel(scale).to(frames.dtype)
    phases = (k[:, None, :, None] * k[None, :, None, :]).reshape(scale * scale, 1, 5, 5)
    x = F.pad(frames, (2, 2, 2, 2), mode="replicate")   # PyTorch's bicubic clamps indices at the border
    return F.conv2d(x, phases.repeat(c, 1, 1, 1), groups=c)   # one 5x5 conv: 3x faster than separable here


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
