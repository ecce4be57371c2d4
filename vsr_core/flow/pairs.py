"""Flow of consecutive frames, computed once per pair and shared.

A stream's overlapping windows share pairs at their seams, and the
stabiliser needs the very pairs the upscaler's propagation used; each pair
(frame i, frame i+1) is estimated once, forward and backward, keyed by the
frame's index in the video, and dropped once the stream has moved past it.
"""
from __future__ import annotations

import torch


class PairFlows:
    """``estimator(a [N,3,H,W], b) -> flow a->b [N,2,H,W]``; counts its calls in ``calls``."""

    def __init__(self, estimator, keep: int = 64):
        self.estimator, self.keep = estimator, keep
        self._pairs: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self.calls = 0

    def pair(self, i: int, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(forward i->i+1, backward i+1->i) [1,2,H,W] for frames a = i, b = i+1 ([1,3,H,W] or [3,H,W])."""
        if i not in self._pairs:
            a, b = (x if x.dim() == 4 else x[None] for x in (a, b))
            self._pairs[i] = (self.estimator(a, b), self.estimator(b, a))
            self.calls += 2
            for old in [k for k in self._pairs if k < i - self.keep]:
                del self._pairs[old]
        return self._pairs[i]

    def window(self, first: int, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Forward/backward flows [T-1,2,H,W] between consecutive frames [T,3,H,W] that start at ``first``."""
        if frames.shape[0] < 2:
            z = frames.new_zeros(0, 2, *frames.shape[-2:])
            return z, z
        pairs = [self.pair(first + k, frames[k], frames[k + 1]) for k in range(frames.shape[0] - 1)]
        return torch.cat([f for f, _ in pairs]).to(frames), torch.cat([b for _, b in pairs]).to(frames)
