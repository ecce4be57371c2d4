"""Noise that depends on (seed, frame, step) only.

Each frame's noise at each step is drawn from its own generator, so processing
a video in windows of any size, or in spatial tiles cropped from full-frame
noise, sees exactly the noise an un-windowed run would: results change with
the window or tile size only as much as the method itself does.
"""
from __future__ import annotations

import torch

_STEP_STRIDE = 1_000_003  # keeps (frame, step) pairs from colliding in the seed


class FrameNoise:
    """Gaussian noise for frames of shape `frame_shape` (e.g. latent [C,h,w])."""

    def __init__(self, seed: int, frame_shape: tuple[int, ...]):
        self.seed = int(seed)
        self.frame_shape = tuple(frame_shape)

    def frame(self, frame_index: int, step: int) -> torch.Tensor:
        g = torch.Generator(device="cpu")
        g.manual_seed((self.seed * 7919 + step * _STEP_STRIDE + frame_index) % (2 ** 63 - 1))
        return torch.randn(self.frame_shape, generator=g, dtype=torch.float32)

    def frames(self, frame_indices, step: int, crop: tuple[slice, slice] | None = None) -> torch.Tensor:
        """Noise [len(frame_indices), *frame_shape], optionally cropped to a (rows, cols) tile."""
        out = torch.stack([self.frame(int(f), step) for f in frame_indices])
        return out if crop is None else out[..., crop[0], crop[1]]
