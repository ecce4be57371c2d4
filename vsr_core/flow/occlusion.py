"""Occlusion from forward-backward consistency.

A pixel p of frame i whose forward flow f(p) is not undone by the backward
flow at its destination, b(p + f(p)), has no reliable match in frame i+1.

Two conventions are provided:

``"squared"`` (default; UnFlow, Meister et al. 2018, and the E_warp code of
Lai et al. 2018 in reference/benchmarks.md)::

    b_w = W(b; f)                     # backward flow warped into frame i
    occ_f = |f + b_w|^2 > alpha * (|f|^2 + |b_w|^2) + beta

``"mgld"`` (MGLD-VSR ``scripts/util_flow.py::forward_backward_consistency_check``:
plain norms, and the magnitude term uses the un-warped flows)::

    occ_f = |f + W(b; f)| > alpha * (|f| + |b|) + beta

and symmetrically for the backward mask. alpha = 0.01, beta = 0.5 in both.
W is ``backward_warp`` with align_corners=True and zero padding, as in MGLD.
"""
from __future__ import annotations

import torch

from ..errors import InputError
from .warp import backward_warp

CONVENTIONS = ("squared", "mgld")


def occlusion_masks(forward: torch.Tensor, backward: torch.Tensor, *, alpha: float = 0.01,
                    beta: float = 0.5, convention: str = "squared") -> tuple[torch.Tensor, torch.Tensor]:
    """Occlusion masks for a batch of flow pairs.

    ``forward`` [N,2,H,W]: frame i -> i+1, on frame i's pixel grid.
    ``backward`` [N,2,H,W]: frame i+1 -> i, on frame i+1's pixel grid.
    Returns (occ_forward, occ_backward), float [N,1,H,W] in {0, 1}:
    occ_forward is 1 where a pixel of frame i has no match in frame i+1 (it
    becomes hidden or leaves the frame); occ_backward likewise for frame i+1
    (pixels that were hidden in, or outside, frame i).
    """
    if forward.shape != backward.shape or forward.dim() != 4 or forward.shape[1] != 2:
        raise InputError(f"occlusion_masks: forward and backward must both be [N,2,H,W], got "
                         f"{tuple(forward.shape)} and {tuple(backward.shape)}")
    if convention not in CONVENTIONS:
        raise InputError(f"occlusion_masks: convention must be one of {CONVENTIONS}, got {convention!r}")
    bw_warped = backward_warp(backward, forward, align_corners=True, padding_mode="zeros")
    fw_warped = backward_warp(forward, backward, align_corners=True, padding_mode="zeros")

    def sq(v):
        return (v * v).sum(dim=1, keepdim=True)

    if convention == "squared":
        occ_f = sq(forward + bw_warped) > alpha * (sq(forward) + sq(bw_warped)) + beta
        occ_b = sq(backward + fw_warped) > alpha * (sq(backward) + sq(fw_warped)) + beta
    else:
        threshold = alpha * (sq(forward).sqrt() + sq(backward).sqrt()) + beta
        occ_f = sq(forward + bw_warped).sqrt() > threshold
        occ_b = sq(backward + fw_warped).sqrt() > threshold
    return occ_f.to(forward.dtype), occ_b.to(forward.dtype)
