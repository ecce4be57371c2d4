"""The upscaler's degradation input: how noisy, compressed and blurred its LR input is, as three numbers in 0..1.

- ``LEVEL_NAMES``: the order of the three numbers (noise, compression, blur).
- ``LevelEstimator``: a small CNN that reads the level from LR frames (the ``auto`` setting); pooled over all
  pixels and frames of a clip, so one clip gets one level (no flicker between frames, tiles or windows).
- ``LevelModulation``: FiLM from the level to per-channel scale and shift of the upscaler's features; its last
  layer starts at zero, so a network given this input starts exactly as it was (warm start from old weights).
"""
from __future__ import annotations

import torch
import torch.nn as nn

LEVEL_NAMES = ("noise", "compression", "blur")


class LevelEstimator(nn.Module):
    """LR clip [B,T,3,H,W] -> level [B,3] in 0..1."""

    def __init__(self, c: int = 24):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, c, 3, 1, 1), nn.LeakyReLU(0.1),
            nn.Conv2d(c, c, 3, 1, 1), nn.LeakyReLU(0.1),
            nn.Conv2d(c, 2 * c, 3, 2, 1), nn.LeakyReLU(0.1),
            nn.Conv2d(2 * c, 2 * c, 3, 2, 1), nn.LeakyReLU(0.1))
        self.head = nn.Sequential(nn.Linear(4 * c, 2 * c), nn.LeakyReLU(0.1), nn.Linear(2 * c, len(LEVEL_NAMES)))

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        # mean and spread of the feature responses over the clip (noise and blocks raise the spread), summed
        # frame by frame so a long clip of large frames never holds more than one frame's features
        total = squares = None
        count = 0
        for t in range(lr.shape[1]):
            f = self.body(lr[:, t].float())
            s, q = f.sum((2, 3)), f.square().sum((2, 3))
            total, squares = (s, q) if total is None else (total + s, squares + q)
            count += f.shape[2] * f.shape[3]
        mean = total / count
        spread = (squares / count - mean.square()).clamp_min(1e-12).sqrt()
        return torch.sigmoid(self.head(torch.cat([mean, spread], 1)))


class LevelModulation(nn.Module):
    """Level [B,3] -> one (scale, shift) pair [B,C,1,1] per modulated feature map (``channels``)."""

    def __init__(self, channels: tuple[int, ...], hidden: int = 32):
        super().__init__()
        self.channels = tuple(channels)
        self.mlp = nn.Sequential(nn.Linear(len(LEVEL_NAMES), hidden), nn.SiLU(),
                                 nn.Linear(hidden, 2 * sum(self.channels)))
        nn.init.zeros_(self.mlp[2].weight)
        nn.init.zeros_(self.mlp[2].bias)

    def forward(self, level: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        out = self.mlp(level.float())
        pairs, at = [], 0
        for c in self.channels:
            scale, shift = out[:, at:at + c], out[:, at + c:at + 2 * c]
            pairs.append((scale[..., None, None], shift[..., None, None]))
            at += 2 * c
        return pairs


def modulate(x: torch.Tensor, pair: tuple[torch.Tensor, torch.Tensor], frames: int) -> torch.Tensor:
    """``x`` [B*T,C,H,W] (batch-major) scaled by 1 + scale and shifted, with one pair per clip of ``frames``."""
    scale, shift = pair
    scale = scale.repeat_interleave(frames, 0).to(x.dtype)
    shift = shift.repeat_interleave(frames, 0).to(x.dtype)
    return torch.addcmul(shift, x, 1 + scale)
