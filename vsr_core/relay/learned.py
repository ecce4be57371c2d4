"""Feeding the learned fusion (models/relay_fusion.py): one frame's carried detail, put in fixed slots.

The hand-designed relay mixes a list of (carried detail, trust, distance); the network wants the previous
and the next keyframe in fixed places, empty (zero detail, zero trust, nearness 0) where a frame has no
such keyframe (the ends of a scene).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .transfer import distance_weight, mix_detail


def fusion_inputs(faithful: torch.Tensor, carried: list[tuple[torch.Tensor, torch.Tensor, int]]) -> dict:
    """The fusion's keyword inputs for frame t: ``faithful`` [N,3,H,W] and its ``carried`` list (keyframes at
    positive distance t - k come before t, at negative after; a keyframe itself is never fused)."""
    zero_detail, zero_trust = torch.zeros_like(faithful, dtype=torch.float32), faithful.new_zeros(
        faithful.shape[0], 1, *faithful.shape[-2:], dtype=torch.float32)
    slots = {"prev": (zero_detail, zero_trust, 0.0), "next": (zero_detail, zero_trust, 0.0)}
    for detail, trust, distance in carried:
        slots["prev" if distance > 0 else "next"] = (detail, trust, distance_weight(distance))
    nearness = torch.tensor([[slots["prev"][2], slots["next"][2]]], dtype=torch.float32)
    return {"faithful": faithful.float(), "prev_detail": slots["prev"][0], "prev_trust": slots["prev"][1],
            "next_detail": slots["next"][0], "next_trust": slots["next"][1], "mix": mix_detail(carried),
            "nearness": nearness.expand(faithful.shape[0], 2)}


def fused_detail(fusion: torch.nn.Module, inputs: dict) -> torch.Tensor:
    """The fusion's detail [N,3,H,W] for ``fusion_inputs``; sides are padded (replicated) to the multiple
    the network works in and cropped back."""
    unit = fusion.config.unshuffle
    h, w = inputs["faithful"].shape[-2:]
    pad = (0, -w % unit, 0, -h % unit)
    padded = {k: (F.pad(v, pad, mode="replicate") if v.dim() == 4 and any(pad) else v) for k, v in inputs.items()}
    return fusion(**padded)[..., :h, :w]
