"""The upscaler's degradation input: how noisy, compressed and blurred its LR input is, as three numbers in 0..1.

- ``LEVEL_NAMES``: the order of the three numbers (noise, compression, blur).
- ``LevelEstimator``: a small CNN that reads the level from LR frames (the ``auto`` setting); pooled over all
  pixels and frames of a clip, so one clip gets one level (no flicker between frames, tiles or windows).
  With ``motion=True`` it also reads each frame's difference to the next frame warped back by the flow:
  noise is new in every frame, fine texture (film grain of the scene, skin, cells under a microscope)
  moves with the picture, so this is where the two differ; in one frame they look alike.
  With ``grid=True`` it also reads the codec's block grid: how much larger the steps between pixels are across
  the lines of a 4, 8 and 16 pixel grid than elsewhere. A soft scene and a compressed one both lack fine
  detail; only the compressed one has edges on the grid.
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
    cells whatever the content, blocks and blur shape its spread; a plain mean would be dominated by edges.

    ``motion=True`` adds the same statistics of each frame's difference to the next frame warped back by the
    flow (``flow_forward``): noise is new in every frame, the scene's own grain moves with the picture, so in
    flat cells this difference is the noise alone (a microscopy clip with fine grain: 1.2 code values RMS,
    3.7 with noise of sigma 3 added). A small head turns them, beside the frame statistics, into a correction
    of the level; its last layer starts at zero, so it starts as the estimator without motion."""

    QUANTILES = (0.1, 0.5, 0.9)
    GRID_PERIODS = (4, 8, 16)      # h264's transform blocks, JPEG / MPEG-4's, macroblocks

    def __init__(self, c: int = 16, motion: bool = False, grid: bool = False):
        super().__init__()
        self.motion = motion
        self.grid = grid
        self.body = nn.Sequential(
            nn.Conv2d(6, c, 3, 1, 1), nn.LeakyReLU(0.1),
            nn.Conv2d(c, c, 3, 1, 1), nn.LeakyReLU(0.1),
            nn.Conv2d(c, c, 3, 1, 1))
        stats = c * (1 + len(self.QUANTILES))
        self.head = nn.Sequential(nn.Linear(stats, 2 * c), nn.LeakyReLU(0.1), nn.Linear(2 * c, len(LEVEL_NAMES)))
        self.motion_head = None
        if motion:
            change_stats = 3 * (1 + len(self.QUANTILES))
            self.motion_head = nn.Sequential(nn.Linear(stats + change_stats, 2 * c), nn.LeakyReLU(0.1),
                                             nn.Linear(2 * c, len(LEVEL_NAMES)))
            nn.init.zeros_(self.motion_head[2].weight)
            nn.init.zeros_(self.motion_head[2].bias)
        self.grid_head = None
        if grid:       # a correction from the grid statistics that starts at zero, as the motion head
            self.grid_head = nn.Sequential(nn.Linear(stats + 2 * len(self.GRID_PERIODS), 2 * c), nn.LeakyReLU(0.1),
                                           nn.Linear(2 * c, len(LEVEL_NAMES)))
            nn.init.zeros_(self.grid_head[2].weight)
            nn.init.zeros_(self.grid_head[2].bias)

    def _cell_energy(self, frames: torch.Tensor) -> torch.Tensor:
        """[N,3,H,W] -> log energy of the features per 8x8 cell, [N,C,cells]."""
        high = frames - F.avg_pool2d(F.pad(frames, (1, 1, 1, 1), mode="replicate"), 3, 1)
        f = self.body(torch.cat([frames, 8 * high], 1))
        cell = min(8, f.shape[-2], f.shape[-1])
        return torch.log(F.avg_pool2d(f.square(), cell) + 1e-6).flatten(2)

    def _stats(self, cells: torch.Tensor) -> torch.Tensor:
        """[B,C,cells] -> mean and quantiles per channel, [B,C*4]."""
        return torch.cat([cells.mean(2)] + [torch.quantile(cells, q, dim=2) for q in self.QUANTILES], 1)

    def _change_cells(self, lr: torch.Tensor, flow_forward: torch.Tensor | None) -> torch.Tensor:
        """Log energy per 8x8 cell [B,3,cells] of frame t minus frame t+1 warped onto it (t < T-1); cells the
        warp leaves (partly) take the clip's median cell, so they move no quantile much."""
        b, t, _, h, w = lr.shape
        if flow_forward is None or tuple(flow_forward.shape) != (b, t - 1, 2, h, w):
            raise InputError(f"the level estimator reads motion: flow_forward of shape {(b, t - 1, 2, h, w)} is "
                             f"needed, got {None if flow_forward is None else tuple(flow_forward.shape)}")
        cell = min(8, h, w)
        energies, inside = [], []
        for i in range(t - 1):
            flow = flow_forward[:, i].float()
            change = lr[:, i].float() - grid_warp(lr[:, i + 1].float(), sampling_grid(flow))
            energies.append(torch.log(F.avg_pool2d(change.square(), cell) + 1e-6).flatten(2))
            inside.append((F.avg_pool2d(inside_mask(flow), cell) > 0.999).flatten(2))
        energies, inside = torch.cat(energies, 2), torch.cat(inside, 2)
        if not bool(inside.any(2).all()):         # the flow leaves the frame everywhere: use every cell
            return energies
        median = energies.masked_fill(~inside, float("nan")).nanmedian(2, keepdim=True).values
        return torch.where(inside, energies, median)

    def _grid_stats(self, lr: torch.Tensor) -> torch.Tensor:
        """[B,T,3,H,W] -> [B,2*periods]: per grid period and direction, the log of the mean absolute step of the
        luma between neighbouring pixels across the grid's lines (the frame's pixel 0 starts a block, as in the
        file) over the mean step elsewhere (x5, clamped to +-5); 0 where the frame is too small to hold a line."""
        weights = torch.tensor([0.299, 0.587, 0.114], device=lr.device)
        y = (lr.float() * weights.view(1, 1, 3, 1, 1)).sum(2)                       # [B,T,H,W]
        out = []
        for step in ((y[..., :, 1:] - y[..., :, :-1]).abs().mean((1, 2)),         # [B,W-1] across columns
                     (y[..., 1:, :] - y[..., :-1, :]).abs().mean((1, 3))):        # [B,H-1] across rows
            at = torch.arange(step.shape[1], device=lr.device)
            for p in self.GRID_PERIODS:
                on = at % p == p - 1
                if not bool(on.any()) or bool(on.all()):
                    out.append(step.new_zeros(step.shape[0]))
                    continue
                out.append(torch.log((step[:, on].mean(1) + 1e-4) / (step[:, ~on].mean(1) + 1e-4)))
        # real codecs give 0.02-0.3; x5 brings that to the other statistics' scale, the clamp bounds cartoons
        return 5 * torch.stack(out, 1).clamp(-1, 1)

    def forward(self, lr: torch.Tensor, flow_forward: torch.Tensor | None = None) -> torch.Tensor:
        """``flow_forward`` [B,T-1,2,H,W] (frame t to t+1): needed with ``motion`` for clips of 2+ frames (a
        single frame has no motion to read: the frame statistics alone decide)."""
        # frame by frame: a long clip of large frames never holds more than one frame's full-size features
        cells = torch.cat([self._cell_energy(lr[:, t].float()) for t in range(lr.shape[1])], 2)
        stats = self._stats(cells)
        logits = self.head(stats)
        if self.motion_head is not None and lr.shape[1] > 1:
            logits = logits + self.motion_head(torch.cat([stats, self._stats(self._change_cells(lr, flow_forward))], 1))
        if self.grid_head is not None:
            logits = logits + self.grid_head(torch.cat([stats, self._grid_stats(lr)], 1))
        return torch.sigmoid(logits)


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
