"""The motion the relay carries detail along: flows between each frame and its keyframes, chained from the
flows between neighbouring frames.

A flow estimated straight from frame t to a keyframe k four frames away has its own error, independent of
the one from t+1 to k, so the carried texture lands a little differently on every frame: it jitters. Chained
through neighbours (t -> t-1 -> ... -> k), the flows of t and t+1 to k differ by exactly the flow between t
and t+1, so the texture moves from frame to frame as the picture does (on held-out clips, the learned
relay's E*warp went from 0.504x to 0.430x of the per-frame detail model's, with the same detail kept). It
also costs two flows per frame instead of four.
"""
from __future__ import annotations

import torch

from ..flow.warp import backward_warp

MAX_CHAIN_FRAMES = 16   # longer spans take flows straight to the keyframes: memory stays bounded, and long
                        # chains add up their neighbour flows' errors


def compose(first: torch.Tensor, then: torch.Tensor) -> torch.Tensor:
    """Flow a -> c [N,2,H,W] from ``first`` a -> b and ``then`` b -> c (``then`` read where ``first`` lands)."""
    return first + backward_warp(then, first, padding_mode="border")


class KeyframeFlows:
    """Flows between the frames of a clip [T,3,H,W] and the two keyframes around them, chained from neighbour
    flows (``estimator(a, b)`` -> flow a -> b).

    The chains of one span (the frames from one keyframe to the next, or to the scene's end where there is
    none) are made when a frame of it is first asked for, and the previous span's are dropped: memory holds
    four flows per frame of one span, whatever the clip's length. A span longer than MAX_CHAIN_FRAMES (sparse
    keyframes given by hand) takes the flows straight to its keyframes instead."""

    def __init__(self, faithful: torch.Tensor, estimator):
        self.frames, self.estimator = faithful, estimator
        self.span: tuple[int, int] | None = None
        self.chains: dict = {}

    def _both_ways(self, a: int, b: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(a -> b, b -> a) estimated straight."""
        here, there = self.frames[a:a + 1].float(), self.frames[b:b + 1].float()
        return self.estimator(here, there), self.estimator(there, here)

    def _build(self, start: int, end: int) -> None:
        """Chains to and from ``start`` and ``end`` for every frame between them."""
        chains = {}
        step = {t: self._both_ways(t, t + 1) for t in range(start, end)}     # (t -> t+1, t+1 -> t)
        to_key = from_key = None
        for t in range(start + 1, end + 1):                                   # to and from the span's first frame
            forward, backward = step[t - 1]
            to_key = backward if to_key is None else compose(backward, to_key)
            from_key = forward if from_key is None else compose(from_key, forward)
            chains[(t, start)] = (to_key, from_key)
        to_key = from_key = None
        for t in range(end - 1, start - 1, -1):                               # to and from its last frame
            forward, backward = step[t]
            to_key = forward if to_key is None else compose(forward, to_key)
            from_key = backward if from_key is None else compose(from_key, backward)
            chains[(t, end)] = (to_key, from_key)
        self.span, self.chains = (start, end), chains

    def pair(self, t: int, k: int, span: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """(t -> k, k -> t) for frame t and keyframe k != t, both in ``span`` (first, last frame), k one of its
        ends."""
        if span[1] - span[0] > MAX_CHAIN_FRAMES:
            return self._both_ways(t, k)
        if span != self.span:
            self._build(*span)
        return self.chains[(t, k)]
