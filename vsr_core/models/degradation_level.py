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
import torch.nn.functional as F

LEVEL_NAMES = ("noise", "compression", "blur")


class LevelEstimator(nn.Module):
    """LR clip [B,T,3,H,W] -> level [B,3] in 0..1.

    Features of the frame and of its high-pass residual, their local energy over 8x8 cells (log), and per clip
    the mean and the low and high quantiles of those energies: noise sets the floor of the local energy in flat
    cells whatever the content, blocks and blur shape its spread; a plain mean would be dominated by edges."""

    QUANTILES = (0.1, 0.5, 0.9)

    def __init__(self, c: int = 16):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(6, c, 3, 1, 1), nn.LeakyReLU(0.1),
            nn.Conv2d(c, c, 3, 1, 1), nn.LeakyReLU(0.1),
            nn.Conv2d(c, c, 3, 1, 1))
        stats = c * (1 + len(self.QUANTILES))
        self.head = nn.Sequential(nn.Linear(stats, 2 * c), nn.LeakyReLU(0.1), nn.Linear(2 * c, len(LEVEL_NAMES)))

    def _cell_energy(self, frames: torch.Tensor) -> torch.Tensor:
        """[N,3,H,W] -> log energy of the features per 8x8 cell, [N,C,cells]."""
        high = frames - F.avg_pool2d(F.pad(frames, (1, 1, 1, 1), mode="replicate"), 3, 1)
        f = self.body(torch.cat([frames, 8 * high], 1))
        cell = min(8, f.shape[-2], f.shape[-1])
        return torch.log(F.avg_pool2d(f.square(), cell) + 1e-6).flatten(2)

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        # frame by frame, so a long clip of large frames never holds more than one frame's full-size features
        cells = torch.cat([self._cell_energy(lr[:, t].float()) for t in range(lr.shape[1])], 2)
        stats = [cells.mean(2)] + [torch.quantile(cells, q, dim=2) for q in self.QUANTILES]
        return torch.sigmoid(self.head(torch.cat(stats, 1)))


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
