"""Overlapping temporal windows and their crossfade, for bounded-memory video sampling.

A long clip is processed window by window; frames seen by two windows are
blended with triangular weights (each window's weight falls to its edges), and
a frame is handed on as soon as no later window covers it, so memory holds
one window plus its overlap. The frame count never changes.
"""
from __future__ import annotations

import torch

from ..errors import InputError


def plan_windows(num_frames: int, window: int, overlap: int) -> list[tuple[int, int]]:
    """[(start, stop)] windows of `window` frames overlapping by at least `overlap`,
    the last one flush with the end (no padding frames are invented)."""
    if num_frames < 1:
        raise InputError(f"cannot plan windows over {num_frames} frames; expected at least 1")
    if not isinstance(window, int) or window < 1:
        raise InputError(f"window={window!r}; expected an integer of at least 1 frame")
    if not isinstance(overlap, int) or not 0 <= overlap < window:
        raise InputError(f"window_overlap={overlap!r}; expected 0 <= overlap < window ({window})")
    if num_frames <= window:
        return [(0, num_frames)]
    stride = window - overlap
    starts = list(range(0, num_frames - window, stride))
    if starts[-1] != num_frames - window:
        starts.append(num_frames - window)
    return [(s, s + window) for s in starts]


def frame_weights(windows: list[tuple[int, int]]) -> list[torch.Tensor]:
    """Per-window per-frame blend weights that sum to 1 over the windows covering each frame."""
    raw = [torch.tensor([min(f - a + 1, b - f) for f in range(a, b)], dtype=torch.float64) for a, b in windows]
    total = torch.zeros(max(b for _a, b in windows), dtype=torch.float64)
    for (a, b), w in zip(windows, raw):
        total[a:b] += w
    return [(w / total[a:b]).float() for (a, b), w in zip(windows, raw)]


class WindowBlender:
    """Accumulates window results and releases finished frames in order."""

    def __init__(self, windows: list[tuple[int, int]]):
        self.windows = windows
        self.weights = frame_weights(windows)
        self.pending: dict[int, torch.Tensor] = {}
        self.next_frame = 0

    def add(self, k: int, frames: torch.Tensor) -> list[tuple[int, torch.Tensor]]:
        """Add window k's result [n,...]; returns [(frame index, blended frame)] now final."""
        a, b = self.windows[k]
        if frames.shape[0] != b - a:
            raise InputError(f"window {k} covers frames {a}..{b - 1} but {frames.shape[0]} frames were given")
        for j in range(b - a):
            contrib = self.weights[k][j].to(frames.dtype) * frames[j]
            self.pending[a + j] = self.pending[a + j] + contrib if a + j in self.pending else contrib
        final_until = self.windows[k + 1][0] if k + 1 < len(self.windows) else b
        out = []
        while self.next_frame < final_until:
            out.append((self.next_frame, self.pending.pop(self.next_frame)))
            self.next_frame += 1
        return out
