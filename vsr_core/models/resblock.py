"""ldm ResBlock, Downsample and Upsample (openaimodel.py), with optional SFT.

Keys: in_layers = [GN, SiLU, conv] (.0, .2), emb_layers = [SiLU, Linear] (.1),
out_layers = [GN, SiLU, Dropout, conv] (.0, .3), skip_connection (1x1 conv
only when the channel count changes; Identity has no keys). With
`cond_channels` the block is StableSR's ResBlockDual: a SPADE (`spade.*`)
modulates the residual branch after out_layers, before the skip add.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .spade import SPADE
from .timestep import TimestepBlock, normalization, zero_module

__all__ = ["ResBlock", "Downsample", "Upsample"]


class ResBlock(TimestepBlock):
    def __init__(self, channels: int, emb_channels: int, out_channels: int | None = None,
                 dropout: float = 0.0, cond_channels: int | None = None, spade_hidden: int = 128):
        super().__init__()
        out_channels = out_channels or channels
        self.channels, self.out_channels = channels, out_channels
        self.in_layers = nn.Sequential(normalization(channels), nn.SiLU(),
                                       nn.Conv2d(channels, out_channels, 3, padding=1))
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_channels, out_channels))
        self.out_layers = nn.Sequential(normalization(out_channels), nn.SiLU(), nn.Dropout(dropout),
                                        zero_module(nn.Conv2d(out_channels, out_channels, 3, padding=1)))
        self.spade = SPADE(out_channels, cond_channels, spade_hidden) if cond_channels else None
        self.skip_connection = (nn.Identity() if out_channels == channels
                                else nn.Conv2d(channels, out_channels, 1))

    def forward(self, x: torch.Tensor, emb: torch.Tensor, struct_cond=None) -> torch.Tensor:
        h = self.in_layers(x)
        h = h + self.emb_layers(emb).type(h.dtype)[..., None, None]
        h = self.out_layers(h)
        if self.spade is not None:
            h = self.spade(h, struct_cond)
        return self.skip_connection(x) + h


class Downsample(nn.Module):
    """Stride-2 3x3 conv (`op`)."""

    def __init__(self, channels: int, out_channels: int | None = None):
        super().__init__()
        self.op = nn.Conv2d(channels, out_channels or channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class Upsample(nn.Module):
    """Nearest x2 then a 3x3 conv (`conv`)."""

    def __init__(self, channels: int, out_channels: int | None = None):
        super().__init__()
        self.conv = nn.Conv2d(channels, out_channels or channels, 3, padding=1)

    def forward(self, x: torch.Tensor, output_size=None) -> torch.Tensor:
        if output_size is not None:
            # Odd sizes: match the skip feature instead of doubling blindly.
            x = F.interpolate(x, size=output_size, mode="nearest")
        else:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        return self.conv(x)
