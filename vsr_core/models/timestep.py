"""Small ldm building blocks shared by the UNet and the structure encoder.

Numerics follow ldm/modules/diffusionmodules/util.py: sinusoidal embeddings
with cos first, then sin (max_period 10000), and GroupNorm that always
computes in float32 (fp16 statistics over 32 groups are too coarse).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

__all__ = ["timestep_embedding", "GroupNorm32", "normalization", "zero_module",
           "TimestepBlock"]


def timestep_embedding(timesteps: torch.Tensor, dim: int, max_period: int = 10000) -> torch.Tensor:
    """[N] (possibly fractional) timesteps -> [N, dim] float32 embeddings."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period)
                      * torch.arange(half, dtype=torch.float32, device=timesteps.device) / half)
    args = timesteps[:, None].float() * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


class GroupNorm32(nn.GroupNorm):
    """GroupNorm computed in float32 and cast back (ldm's GroupNorm32)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Parameters may be fp16/bf16 after a cast; compute everything in fp32.
        w = self.weight.float() if self.weight is not None else None
        b = self.bias.float() if self.bias is not None else None
        return nn.functional.group_norm(x.float(), self.num_groups, w, b, self.eps).type(x.dtype)


def normalization(channels: int, groups: int = 32) -> GroupNorm32:
    return GroupNorm32(groups, channels)


def zero_module(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class TimestepBlock(nn.Module):
    """Marker: forward(x, emb, ...) takes the timestep embedding."""
