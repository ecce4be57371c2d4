"""Long videos as a stream of overlapping segments, with a resumable on-disk cache.

The frames stream in; every `segment` frames (the last `overlap` of them shared
with the next segment) go through `process`, and the outputs in the overlap
are crossfaded linearly, so memory holds one segment whatever the video's
length. `process` may hand state to the next segment (a dict of tensors, e.g.
the guidance anchors of Guided Sample) and sees the frame just before its
segment (e.g. for the flow into it).

With a `SegmentCache`, each finished segment is stored (its final frames as
uint8, its unblended tail and its state) before the next one starts; a run
that was cancelled or crashed resumes at the first segment not in the cache and
writes exactly the 8-bit frames an uninterrupted run would.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import numpy as np
import torch

from ..errors import InputError
from ..frames import float_to_uint8, tchw_to_thwc
from ..progress import Reporter, get_reporter

# process(lr [n,3,h,w], lead [1,3,h,w] or None, state, export, first_frame) -> (out [n,3,H,W] in 0..1, state)
# `export` is the index (in this segment) of the frame before the next segment, None for the last segment.
Process = Callable[[torch.Tensor, torch.Tensor | None, dict, int | None, int], tuple[torch.Tensor, dict]]


@dataclass
class SegmentResult:
    frames: torch.Tensor            # float [n,3,H,W] final output frames (blended head included)
    tail: torch.Tensor | None       # float [overlap,3,H,W]: outputs still to be crossfaded with the next segment
    state: dict                     # handed to the next segment's process

    def frames_uint8(self) -> np.ndarray:
        """[n,H,W,3], as a video writer stores them (what the cache keeps)."""
        return float_to_uint8(tchw_to_thwc(self.frames))


def check_segmenting(segment: int, overlap: int) -> None:
    if not isinstance(segment, int) or segment < 1:
        raise InputError(f"segment={segment!r}; expected an integer of at least 1 frame")
    if not isinstance(overlap, int) or not 0 <= overlap < segment:
        raise InputError(f"segment_overlap={overlap!r}; expected 0 <= overlap < segment ({segment})")


def _crossfade(tail: torch.Tensor, head: torch.Tensor) -> torch.Tensor:
    n = tail.shape[0]
    ramp = torch.arange(1, n + 1, dtype=torch.float32).view(-1, 1, 1, 1) / (n + 1)
    return tail * (1 - ramp) + head * ramp


def _finish(out: torch.Tensor, tail: torch.Tensor | None, overlap: int, last: bool, state: dict) -> SegmentResult:
    out = out.float()
    if tail is not None:
        out = torch.cat([_crossfade(tail, out[:overlap]), out[overlap:]])
    keep = out.shape[0] if last else out.shape[0] - overlap
    return SegmentResult(out[:keep], None if last else out[keep:].clone(), state)


def run_segments(chunks: Iterable[torch.Tensor], process: Process, segment: int, overlap: int,
                 cache=None, reporter: Reporter | None = None) -> Iterator[torch.Tensor]:
    """Yield output frames [n,3,H,W] (float, 0..1) in order for a stream of LR chunks [n,3,h,w].

    Every frame is output exactly once. A cached segment is read instead of
    processed (its frames 8-bit, as they are written to a file); the LR stream
    is still read through (decoding is cheap).
    """
    check_segmenting(segment, overlap)
    reporter = get_reporter(reporter)
    stride = segment - overlap
    buffer: list[torch.Tensor] = []
    lead = None                                    # the LR frame before buffer[0]
    first, index = 0, 0                            # first frame of the next segment, its number
    previous = SegmentResult(torch.zeros(0), None, {})
    shape = None

    def run(frames: list[torch.Tensor], last: bool) -> SegmentResult:
        reporter.check_interrupt()
        stored = cache.load(index) if cache is not None else None
        if stored is not None:
            return stored
        lr = torch.stack(frames)
        export = None if last else stride - 1
        out, state = process(lr, lead, previous.state, export, first)
        if out.shape[0] != lr.shape[0]:
            raise InputError(f"segment {index}: {lr.shape[0]} frames in, {out.shape[0]} out; expected the same")
        result = _finish(out, previous.tail, overlap, last, state)
        if cache is not None:
            cache.store(index, result)
        return result

    for chunk in chunks:
        if shape is None:
            shape = tuple(chunk.shape[1:])
        elif tuple(chunk.shape[1:]) != shape:
            raise InputError(f"frames change size from {shape} to {tuple(chunk.shape[1:])}; expected one size")
        buffer.extend(chunk.unbind(0))
        while len(buffer) > segment:               # a frame exists after this segment: it is not the last
            previous = run(buffer[:segment], last=False)
            reporter.update(len(previous.frames))
            yield previous.frames
            lead, buffer = buffer[stride - 1], buffer[stride:]
            first, index = first + stride, index + 1
    if buffer:
        previous = run(buffer, last=True)
        reporter.update(len(previous.frames))
        yield previous.frames
