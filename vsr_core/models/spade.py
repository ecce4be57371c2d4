"""SPADE, the SFT layer of StableSR (ldm/modules/spade.py; methods.md 2.1).

    out = GN32(h) * (1 + gamma(s)) + beta(s)
    gamma, beta = Conv3x3(ReLU(Conv3x3(s -> 128)))

`param_free_norm` is, despite its name, GroupNorm32(32, C) with affine
parameters (StableSR builds it with `normalization`). The structure feature s
is looked up in the condition dict by the feature's width, str(h.shape[-1]).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from ..errors import InputError
from .timestep import normalization

__all__ = ["SPADE"]


class SPADE(nn.Module):
    def __init__(self, channels: int, cond_channels: int, hidden: int = 128, kernel_size: int = 3):
        super().__init__()
        pad = kernel_size // 2
        self.param_free_norm = normalization(channels)
        self.mlp_shared = nn.Sequential(nn.Conv2d(cond_channels, hidden, kernel_size, padding=pad), nn.ReLU())
        self.mlp_gamma = nn.Conv2d(hidden, channels, kernel_size, padding=pad)
        self.mlp_beta = nn.Conv2d(hidden, channels, kernel_size, padding=pad)

    def forward(self, x: torch.Tensor, cond: dict[str, torch.Tensor]) -> torch.Tensor:
        key = str(x.shape[-1])
        if cond is None or key not in cond:
            have = sorted(cond, key=lambda s: -int(s)) if cond else []
            raise InputError(
                f"struct_cond: expected a structure feature of width {key} "
                f"(the dict from the structure encoder, keyed by width), got widths {have}")
        s = cond[key].to(x.dtype)
        actv = self.mlp_shared(s)
        return self.param_free_norm(x) * (1 + self.mlp_gamma(actv)) + self.mlp_beta(actv)
