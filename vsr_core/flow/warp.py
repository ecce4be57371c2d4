"""Backward warping with a dense flow field.

``backward_warp(image, flow)[..., y, x] = image[..., y + dy, x + dx]`` with
``(dx, dy) = flow[:, :, y, x]`` in pixels, sampled bilinearly. So with the
vsr_core convention (``FlowField.forward[i]`` takes frame i to frame i+1),
``backward_warp(frame[i+1], forward[i])`` reconstructs frame i, and
``backward_warp(frame[i], backward[i])`` reconstructs frame i+1.

``align_corners`` and ``padding_mode`` are explicit because the references
differ: MGLD-VSR's latent guidance and its occlusion check (``flow_warp`` in
``scripts/util_flow.py``) and RAFT's correlation lookup use
``grid_sample(align_corners=True, padding_mode="zeros")``, our defaults.
Pixel coordinates are normalised to match the chosen ``align_corners`` (x/(W-1)
for True, (x+0.5)/W for False), so integer flows land exactly on pixel centres
either way; the two choices then differ only in how samples outside the frame
blend with the padding.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import InputError

PADDING_MODES = ("zeros", "border", "reflection")
MGLD_WARP = {"align_corners": True, "padding_mode": "zeros"}


def pixel_grid(n: int, h: int, w: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """[N,2,H,W] pixel coordinates; channel 0 is x, channel 1 is y."""
    ys, xs = torch.meshgrid(torch.arange(h, device=device, dtype=dtype),
                            torch.arange(w, device=device, dtype=dtype), indexing="ij")
    return torch.stack([xs, ys])[None].expand(n, 2, h, w)


def _normalise(coords: torch.Tensor, size: int, align_corners: bool) -> torch.Tensor:
    if align_corners:
        return 2.0 * coords / max(size - 1, 1) - 1.0
    return (2.0 * coords + 1.0) / size - 1.0


def backward_warp(image: torch.Tensor, flow: torch.Tensor, *, align_corners: bool = True,
                  padding_mode: str = "zeros", mode: str = "bilinear") -> torch.Tensor:
    """Sample ``image`` [N,C,H,W] at ``p + flow(p)``; ``flow`` is [N,2,H,W] in
    pixels at the image's resolution. Returns [N,C,H,W] in image's dtype."""
    if image.dim() != 4 or flow.dim() != 4 or flow.shape[1] != 2:
        raise InputError(f"backward_warp: image must be [N,C,H,W] and flow [N,2,H,W], got "
                         f"{tuple(image.shape)} and {tuple(flow.shape)}")
    if image.shape[0] != flow.shape[0] or image.shape[-2:] != flow.shape[-2:]:
        raise InputError(f"backward_warp: flow {tuple(flow.shape)} does not match image "
                         f"{tuple(image.shape)} (same N, H and W expected; use "
                         f"FlowField.resized() to change the flow's resolution)")
    if padding_mode not in PADDING_MODES:
        raise InputError(f"backward_warp: padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}")
    return grid_warp(image, sampling_grid(flow, align_corners), align_corners=align_corners,
                     padding_mode=padding_mode, mode=mode)


def sampling_grid(flow: torch.Tensor, align_corners: bool = True) -> torch.Tensor:
    """grid_sample's normalised [N,H,W,2] grid for ``flow`` [N,2,H,W] in pixels (to warp several images
    with one flow without recomputing it)."""
    n, _, h, w = flow.shape
    coords = pixel_grid(n, h, w, flow.device, flow.dtype) + flow
    return torch.stack([_normalise(coords[:, 0], w, align_corners),
                        _normalise(coords[:, 1], h, align_corners)], dim=-1)


def grid_warp(image: torch.Tensor, grid: torch.Tensor, *, align_corners: bool = True,
              padding_mode: str = "zeros", mode: str = "bilinear") -> torch.Tensor:
    """``backward_warp`` with a precomputed ``sampling_grid`` (same align_corners); image's dtype is kept."""
    out = F.grid_sample(image.to(grid.dtype), grid, mode=mode, padding_mode=padding_mode,
                        align_corners=align_corners)
    return out.to(image.dtype)


def inside_mask(flow: torch.Tensor) -> torch.Tensor:
    """[N,1,H,W] 1.0 where ``p + flow(p)`` lies inside the frame, else 0.0."""
    n, _, h, w = flow.shape
    coords = pixel_grid(n, h, w, flow.device, flow.dtype) + flow
    ok = (coords[:, 0] >= 0) & (coords[:, 0] <= w - 1) & (coords[:, 1] >= 0) & (coords[:, 1] <= h - 1)
    return ok[:, None].to(flow.dtype)
