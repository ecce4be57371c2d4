"""The upscaler's degradation input: how noisy, compressed and blurred its LR input is, as three numbers in 0..1.

- ``LEVEL_NAMES``: the order of the three numbers (noise, compression, blur).
- ``LevelEstimator``: a small CNN that reads the level from LR frames (the ``auto`` setting); pooled over all
  pixels and frames of a clip, so one clip gets one level (no flicker between frames, tiles or windows).
  With ``motion=True`` it also reads each frame's difference to the next frame warped back by the flow:
  noise is new in every frame, fine texture (film grain of the scene, skin, cells under a microscope)
  moves with the picture, so this is where the two differ; in one frame they look alike.
- ``LevelModulation``: FiLM from the level to per-channel scale and shift of the upscaler's features; its last
  layer starts at zero, so a network given this input starts exactly as it was (warm start from old weights).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import InputError
from ..flow.warp import grid_warp, inside_mask, sampling_grid

LEVEL_NAMES = ("noise", "compression", "blur")


class LevelEstimator(nn.Module):
    """LR clip [B,T,3,H,W] -> level [B,3] in 0..1.

    Features of the frame and of its high-pass residual, their local energy over 8x8 cells (log), and per clip
    the mean and the low and high quantiles of those energies: noise sets the floor of the local energy in flat
    cells whatever the content, blocks and blur shape its spread; a plain mean would be dominated by edges."""

    QUANTILES = (0.1, 0.5, 0.9)
    MOTION_DROPOUT = 0.15      # in training, this share of clips reads without the motion input (single frames)

    def __init__(self, c: int = 16, motion: bool = False):
        super().__init__()
        self.motion = motion
        self.body = nn.Sequential(
            nn.Conv2d(9 if motion else 6, c, 3, 1, 1), nn.LeakyReLU(0.1),
            nn.Conv2d(c, c, 3, 1, 1), nn.LeakyReLU(0.1),
            nn.Conv2d(c, c, 3, 1, 1))
        stats = c * (1 + len(self.QUANTILES))
        self.head = nn.Sequential(nn.Linear(stats, 2 * c), nn.LeakyReLU(0.1), nn.Linear(2 * c, len(LEVEL_NAMES)))

    def _cell_energy(self, frames: torch.Tensor, change: torch.Tensor | None = None) -> torch.Tensor:
        """[N,3,H,W] (and, with motion, the motion-compensated change to the next frame) -> log energy of the
        features per 8x8 cell, [N,C,cells]."""
        high = frames - F.avg_pool2d(F.pad(frames, (1, 1, 1, 1), mode="replicate"), 3, 1)
        inputs = [frames, 8 * high] + ([8 * change] if self.motion else [])
        f = self.body(torch.cat(inputs, 1))
        cell = min(8, f.shape[-2], f.shape[-1])
        return torch.log(F.avg_pool2d(f.square(), cell) + 1e-6).flatten(2)

    def _changes(self, lr: torch.Tensor, flow_forward: torch.Tensor | None) -> list[torch.Tensor]:
        """Per frame t < T-1 (all frames of a single-frame clip): frame t minus frame t+1 warped onto it,
        zero where the warp leaves the frame; a single frame (and, in training, a few clips) reads zeros."""
        b, t = lr.shape[:2]
        if t < 2:
            return [lr.new_zeros(b, 3, *lr.shape[-2:])]
        if flow_forward is None or tuple(flow_forward.shape) != (b, t - 1, 2, *lr.shape[-2:]):
            raise InputError(f"the level estimator reads motion: flow_forward of shape {(b, t - 1, 2, *lr.shape[-2:])} "
                             f"is needed, got {None if flow_forward is None else tuple(flow_forward.shape)}")
        keep = torch.ones(b, 1, 1, 1, device=lr.device)
        if self.training:
            keep = (torch.rand(b, 1, 1, 1, device=lr.device) >= self.MOTION_DROPOUT).float()
        out = []
        for i in range(t - 1):
            flow = flow_forward[:, i].float()
            warped = grid_warp(lr[:, i + 1].float(), sampling_grid(flow))
            out.append((lr[:, i].float() - warped) * inside_mask(flow) * keep)
        return out

    def forward(self, lr: torch.Tensor, flow_forward: torch.Tensor | None = None) -> torch.Tensor:
        """``flow_forward`` [B,T-1,2,H,W] (frame t to t+1): needed with ``motion`` for clips of 2+ frames."""
        if not self.motion:     # frame by frame: a long clip of large frames holds one frame's features at most
            cells = torch.cat([self._cell_energy(lr[:, t].float()) for t in range(lr.shape[1])], 2)
        else:
            cells = torch.cat([self._cell_energy(lr[:, t].float(), change) for t, change in
                               enumerate(self._changes(lr, flow_forward))], 2)
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
