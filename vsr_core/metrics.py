"""Fidelity and temporal metrics with the published conventions (benchmarks.md section 2).

- ``psnr_y`` / ``ssim_y``: BasicSR ``calculate_psnr/ssim(..., test_y_channel=True)``:
  inputs in uint8 range (0..255), Y = BT.601 ``rgb2ycbcr`` limited range
  (16..235), ``crop_border`` = 0 (the VSR convention), PSNR over the whole
  clip = mean of per-frame PSNRs.
- ``warping_error``: E_warp of Lai et al. 2018: frame t+1 warped to t with a
  given flow, squared error on 0..1 RGB summed over channels, divided by the
  number of non-occluded pixels, averaged over t. Report x1000 (E*warp).
  The flow is given (e.g. DIS on the ground truth), so the number is
  comparable between our methods, not with papers that used FlowNet2/RAFT.

Frames are float tensors [T,3,H,W] (or [3,H,W]) in 0..1, or uint8 arrays
[T,H,W,3]; both are accepted.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from .errors import InputError


def _to_tchw_255(x, name: str) -> torch.Tensor:
    """float64 [T,3,H,W] in 0..255 from float 0..1 tensors [T,3,H,W] or uint8 arrays [T,H,W,3]."""
    if isinstance(x, np.ndarray):
        if x.dtype != np.uint8:
            raise InputError(f"{name}: numpy frames must be uint8 [T,H,W,3], got {x.dtype}")
        t = torch.from_numpy(np.ascontiguousarray(x)).double()
        if t.dim() == 3:
            t = t[None]
        if t.dim() != 4 or t.shape[-1] != 3:
            raise InputError(f"{name}: expected uint8 [T,H,W,3], got {tuple(x.shape)}")
        return t.permute(0, 3, 1, 2)
    if not isinstance(x, torch.Tensor):
        raise InputError(f"{name}: expected a tensor [T,3,H,W] in 0..1 or uint8 array, got {type(x).__name__}")
    if x.dim() == 3:
        x = x[None]
    if x.dim() != 4 or x.shape[1] != 3:
        raise InputError(f"{name}: expected [T,3,H,W] RGB, got {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise InputError(f"{name} contains NaN or infinite values")
    if x.dtype == torch.uint8:
        return x.double()
    return x.detach().double().cpu() * 255.0


def rgb_to_y(img255: torch.Tensor) -> torch.Tensor:
    """BT.601 limited-range luma of [...,3,H,W] RGB in 0..255 (BasicSR rgb2ycbcr, y_only)."""
    r, g, b = img255.unbind(-3)
    return 16.0 + (65.481 * r + 128.553 * g + 24.966 * b) / 255.0


def _pair(output, target, crop_border: int) -> tuple[torch.Tensor, torch.Tensor]:
    a, b = _to_tchw_255(output, "output"), _to_tchw_255(target, "target")
    if a.shape != b.shape:
        raise InputError(f"output {tuple(a.shape)} and target {tuple(b.shape)} must have the same shape")
    if crop_border:
        a = a[..., crop_border:-crop_border, crop_border:-crop_border]
        b = b[..., crop_border:-crop_border, crop_border:-crop_border]
    return a, b


def psnr_y(output, target, crop_border: int = 0, round_output: bool = True) -> float:
    """Mean per-frame PSNR on Y (dB). Float outputs are rounded to uint8 first, as saving them would."""
    a, b = _pair(output, target, crop_border)
    if round_output:
        a, b = a.clamp(0, 255).round(), b.clamp(0, 255).round()
    ya, yb = rgb_to_y(a), rgb_to_y(b)
    mse = ((ya - yb) ** 2).flatten(1).mean(1)
    vals = [float("inf") if m == 0 else 10.0 * math.log10(255.0 ** 2 / float(m)) for m in mse]
    return float(np.mean(vals))


def _ssim_single(img1: torch.Tensor, img2: torch.Tensor) -> float:
    """BasicSR _ssim: 11x11 Gaussian sigma 1.5, valid region, on 0..255."""
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    ax = torch.arange(11, dtype=torch.float64) - 5
    g = torch.exp(-ax ** 2 / (2 * 1.5 ** 2))
    g = g / g.sum()
    win = torch.outer(g, g)[None, None]
    x, y = img1[None, None], img2[None, None]
    mu1, mu2 = F.conv2d(x, win), F.conv2d(y, win)
    s1 = F.conv2d(x * x, win) - mu1 ** 2
    s2 = F.conv2d(y * y, win) - mu2 ** 2
    s12 = F.conv2d(x * y, win) - mu1 * mu2
    m = ((2 * mu1 * mu2 + c1) * (2 * s12 + c2)) / ((mu1 ** 2 + mu2 ** 2 + c1) * (s1 + s2 + c2))
    return float(m.mean())


def ssim_y(output, target, crop_border: int = 0) -> float:
    """Mean per-frame SSIM on Y (BasicSR convention)."""
    a, b = _pair(output, target, crop_border)
    a, b = a.clamp(0, 255).round(), b.clamp(0, 255).round()
    if min(a.shape[-2:]) < 11:
        raise InputError(f"ssim_y needs frames of at least 11x11, got {a.shape[-1]}x{a.shape[-2]}")
    ya, yb = rgb_to_y(a), rgb_to_y(b)
    return float(np.mean([_ssim_single(p, q) for p, q in zip(ya, yb)]))


def warping_error(frames, flow_forward: torch.Tensor, valid: torch.Tensor | None = None) -> float:
    """E_warp: mean over t of sum_c (I_t - W(I_{t+1}, F_{t->t+1}))^2 summed over valid pixels / #valid.

    ``frames``: [T,3,H,W] float 0..1 (or uint8 [T,H,W,3]); ``flow_forward``:
    [T-1,2,H,W] in pixels (pixel p of frame t is at p + flow in frame t+1);
    ``valid``: optional [T-1,1,H,W] 1 = non-occluded (e.g. 1 - occlusion_forward).
    Returns the plain value; multiply by 1000 for E*warp.
    """
    from .flow.warp import backward_warp, inside_mask

    x = _to_tchw_255(frames, "frames") / 255.0
    t, _, h, w = x.shape
    if t < 2:
        raise InputError(f"warping_error needs at least 2 frames, got {t}")
    if tuple(flow_forward.shape) != (t - 1, 2, h, w):
        raise InputError(f"flow_forward has shape {tuple(flow_forward.shape)}; expected {(t - 1, 2, h, w)}")
    fl = flow_forward.double()
    mask = inside_mask(fl)
    if valid is not None:
        if tuple(valid.shape) != (t - 1, 1, h, w):
            raise InputError(f"valid has shape {tuple(valid.shape)}; expected {(t - 1, 1, h, w)}")
        mask = mask * valid.double()
    warped = backward_warp(x[1:], fl)
    err = ((x[:-1] - warped) ** 2).sum(1, keepdim=True) * mask
    per_t = err.flatten(1).sum(1) / mask.flatten(1).sum(1).clamp_min(1.0)
    return float(per_t.mean())
