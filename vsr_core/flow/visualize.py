"""Flow as colour: the Middlebury colour wheel (Baker et al., IJCV 2011).

Hue is the direction of motion, saturation its magnitude relative to
``max_magnitude``; zero motion is white. Right = red, down = yellow-green
side, left = cyan, up = blue/magenta (the Middlebury ``flow-code`` layout,
with y pointing down as in images).
"""
from __future__ import annotations

import torch

from ..errors import InputError
from .field import FlowField

# Number of hues between the six primaries of the wheel (Baker et al.).
_RY, _YG, _GC, _CB, _BM, _MR = 15, 6, 4, 11, 13, 6


def color_wheel() -> torch.Tensor:
    """[55,3] float colours in 0..1 around the wheel (red, yellow, green,
    cyan, blue, magenta), as in the Middlebury flow-code."""
    def ramp(n):  # floor(255 * i / n), i = 0..n-1
        return torch.floor(255 * torch.arange(n, dtype=torch.float32) / n)

    full = torch.full
    cols = [
        torch.stack([full((_RY,), 255.0), ramp(_RY), full((_RY,), 0.0)], 1),
        torch.stack([255 - ramp(_YG), full((_YG,), 255.0), full((_YG,), 0.0)], 1),
        torch.stack([full((_GC,), 0.0), full((_GC,), 255.0), ramp(_GC)], 1),
        torch.stack([full((_CB,), 0.0), 255 - ramp(_CB), full((_CB,), 255.0)], 1),
        torch.stack([ramp(_BM), full((_BM,), 0.0), full((_BM,), 255.0)], 1),
        torch.stack([full((_MR,), 255.0), full((_MR,), 0.0), 255 - ramp(_MR)], 1),
    ]
    return torch.cat(cols) / 255.0


def flow_to_rgb(flow: torch.Tensor, max_magnitude: float | None = None) -> torch.Tensor:
    """[...,2,H,W] flow -> [...,H,W,3] float RGB in 0..1.

    ``max_magnitude``: the motion (pixels) shown fully saturated; default the
    largest magnitude in ``flow``. Larger motions are drawn darker.
    """
    if flow.dim() < 3 or flow.shape[-3] != 2:
        raise InputError(f"flow_to_rgb: expected [...,2,H,W], got {tuple(flow.shape)}")
    flow = flow.detach().float().cpu()
    u, v = flow[..., 0, :, :], flow[..., 1, :, :]
    rad = torch.sqrt(u * u + v * v)
    if max_magnitude is None:
        max_magnitude = float(rad.max()) if rad.numel() else 0.0
    if not max_magnitude > 0:
        return torch.ones(*rad.shape, 3)
    rad = rad / max_magnitude
    wheel = color_wheel()
    ncols = wheel.shape[0]
    angle = torch.atan2(-v, -u) / torch.pi                # -1..1
    fk = (angle + 1) / 2 * (ncols - 1)
    k0 = fk.floor().long().clamp(0, ncols - 1)
    k1 = (k0 + 1) % ncols
    frac = (fk - k0.float())[..., None]
    col = (1 - frac) * wheel[k0] + frac * wheel[k1]       # [...,H,W,3]
    r = rad[..., None]
    inside = r <= 1
    col = torch.where(inside, 1 - r * (1 - col), col * 0.75)
    return col.clamp(0, 1)


def flow_preview(field: FlowField, direction: str = "forward", max_magnitude: float | None = None,
                 show_occlusion: bool = False, match_frames: bool = True) -> torch.Tensor:
    """Colour-wheel images of a FlowField in ComfyUI IMAGE layout
    [B,H,W,3] float 0..1.

    One shared ``max_magnitude`` (default: the largest motion in the clip) so
    colours compare across frames. ``show_occlusion`` paints occluded pixels
    black. ``match_frames`` appends a white (no motion) image so the preview
    has T images, one per video frame; otherwise T-1, one per pair.
    """
    if direction not in ("forward", "backward"):
        raise InputError(f"direction: expected 'forward' or 'backward', got {direction!r}")
    flow = field.forward if direction == "forward" else field.backward
    occ = field.occlusion_forward if direction == "forward" else field.occlusion_backward
    if max_magnitude is not None and not max_magnitude > 0:
        raise InputError(f"max_magnitude: expected a positive number of pixels or None, got {max_magnitude!r}")
    rgb = flow_to_rgb(flow, max_magnitude)
    if show_occlusion:
        rgb = rgb * (1 - occ.detach().cpu().float()[:, 0, :, :, None])
    if match_frames:
        rgb = torch.cat([rgb, torch.ones_like(rgb[:1])], dim=0)
    return rgb.contiguous()
