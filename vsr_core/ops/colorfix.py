"""Colour fix after super-resolution: StableSR's ``scripts/wavelet_color_fix.py``.

- ``adain_color_fix``: per frame and channel, the output's mean and standard
  deviation are replaced by the reference's (the LR input). Variance is the
  unbiased one plus eps = 1e-5, as ``calc_mean_std``.
- ``wavelet_color_fix``: 5-level à-trous decomposition with the kernel
  [[1,2,1],[2,4,2],[1,2,1]]/16 at dilation 2^i and replicate padding; the
  result is the output's high frequencies plus the reference's lowest band:
  ``HF(sr) + LF_5(ref)``.

Frames are float [T,3,H,W] (or [3,H,W]) in 0..1. The reference may be the LR
clip: it is resized bicubically to the output's size first (StableSR passes
the upsampled LR).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import InputError
from .frames import check_finite

COLOR_FIX_METHODS = ("none", "adain", "wavelet")


def _prepare(output, reference) -> tuple[torch.Tensor, torch.Tensor, bool]:
    for name, x in (("output", output), ("reference", reference)):
        if not isinstance(x, torch.Tensor) or x.dim() not in (3, 4) or x.shape[-3] != 3:
            raise InputError(f"color fix {name}: expected float frames [T,3,H,W], got "
                             f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
        if not x.is_floating_point():
            raise InputError(f"color fix {name}: expected float values in 0..1, got {x.dtype}")
        check_finite(x, f"color fix {name}")
    single = output.dim() == 3
    out = output[None] if single else output
    ref = reference[None] if reference.dim() == 3 else reference
    if ref.shape[0] != out.shape[0]:
        raise InputError(f"color fix: reference has {ref.shape[0]} frames, output {out.shape[0]}; expected the same")
    return out, ref.to(out), single


def _mean_std(x: torch.Tensor, eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    n, c = x.shape[:2]
    flat = x.reshape(n, c, -1)
    return flat.mean(2).view(n, c, 1, 1), (flat.var(2) + eps).sqrt().view(n, c, 1, 1)


def adain_color_fix(output: torch.Tensor, reference: torch.Tensor, clamp: bool = True) -> torch.Tensor:
    """Match each frame's per-channel mean/std to the reference frame's."""
    out, ref, single = _prepare(output, reference)
    m_o, s_o = _mean_std(out.float())
    m_r, s_r = _mean_std(ref.float())
    y = ((out.float() - m_o) / s_o * s_r + m_r).to(out.dtype)
    if clamp:
        y = y.clamp(0, 1)
    return y[0] if single else y


def wavelet_blur(x: torch.Tensor, radius: int) -> torch.Tensor:
    k = torch.tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]], dtype=x.dtype, device=x.device) / 16
    c = x.shape[1]
    x = F.pad(x, (radius, radius, radius, radius), mode="replicate")
    return F.conv2d(x, k[None, None].repeat(c, 1, 1, 1), groups=c, dilation=radius)


def wavelet_decomposition(x: torch.Tensor, levels: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum of the high-frequency bands, the lowest band)."""
    high = torch.zeros_like(x)
    low = x
    for i in range(levels):
        low_next = wavelet_blur(low, 2 ** i)
        high = high + (low - low_next)
        low = low_next
    return high, low


def wavelet_color_fix(output: torch.Tensor, reference: torch.Tensor, levels: int = 5,
                      clamp: bool = True) -> torch.Tensor:
    """High frequencies of the output + lowest band of the reference (resized to the output's size)."""
    out, ref, single = _prepare(output, reference)
    if ref.shape[-2:] != out.shape[-2:]:
        ref = F.interpolate(ref, size=out.shape[-2:], mode="bicubic", align_corners=False)
    high, _ = wavelet_decomposition(out, levels)
    _, low = wavelet_decomposition(ref, levels)
    y = high + low
    if clamp:
        y = y.clamp(0, 1)
    return y[0] if single else y


def color_fix(output: torch.Tensor, reference: torch.Tensor, method: str = "wavelet") -> torch.Tensor:
    """Dispatch by name: 'none', 'adain' or 'wavelet'."""
    if method == "none":
        return output
    if method == "adain":
        return adain_color_fix(output, reference)
    if method == "wavelet":
        return wavelet_color_fix(output, reference)
    raise InputError(f"color fix method={method!r}; expected one of {', '.join(COLOR_FIX_METHODS)}")
