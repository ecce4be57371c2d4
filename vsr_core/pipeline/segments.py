"""Long videos as a stream of overlapping segments, with a resumable on-disk cache.

The frames stream in; every `segment` frames (the last `overlap` of them shared
with the next segment) go through `process`, and the outputs in the overlap
are crossfaded linearly, so memory holds one segment whatever the video's
length. `process` may hand state to the next segment (a dict of tensors, e.g.
the guidance anchors of Guided Sample) and sees the frame just before its
segment (e.g. for the flow into it).

A job's `ChunkCache` (vsr_core.jobs.chunk_cache) stores finished segments'
frames encoded, with the tail and state at chunk ends, and hands back a
`Resume` point, so a run that was cancelled or crashed continues where it
stopped and writes exactly the frames an uninterrupted run would.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import numpy as np
import torch

from ..errors import InputError
from ..ops.frames import float_to_uint8, tchw_to_thwc
from ..progress import Reporter, get_reporter

# process(lr [n,3,h,w], lead [1,3,h,w] or None, state, export, first_frame) -> (out [n,3,H,W] in 0..1, state)
# `export` is the index (in this segment) of the frame before the next segment, None for the last segment.
Process = Callable[[torch.Tensor, torch.Tensor | None, dict, int | None, int], tuple[torch.Tensor, dict]]


@dataclass
class SegmentResult:
    frames: torch.Tensor            # float [n,3,H,W] final output frames (blended head included)
    tail: torch.Tensor | None       # float [overlap,3,H,W]: outputs still to be crossfaded with the next segment
    state: dict                     # handed to the next segment's process
    index: int = 0                  # the segment's number
    first_frame: int = 0            # the video frame its `frames` start at

    @property
    def last(self) -> bool:
        return self.tail is None

    def frames_uint8(self) -> np.ndarray:
        """[n,H,W,3], as a video writer stores them."""
        return float_to_uint8(tchw_to_thwc(self.frames), f"segment {self.index}", self.first_frame)


@dataclass
class Resume:
    """Where a job continues: the next segment, its first frame, and the tail/state of the one before."""

    segment: int
    first_frame: int
    previous: SegmentResult
    finished: bool = False          # every segment is done; the stream is only read through


def check_segmenting(segment: int, overlap: int) -> None:
    if not isinstance(segment, int) or segment < 1:
        raise InputError(f"segment={segment!r}; expected an integer of at least 1 frame")
    if not isinstance(overlap, int) or not 0 <= overlap < segment:
        raise InputError(f"segment_overlap={overlap!r}; expected 0 <= overlap < segment ({segment})")


def _crossfade(tail: torch.Tensor, head: torch.Tensor) -> torch.Tensor:
    n = tail.shape[0]
    ramp = torch.arange(1, n + 1, dtype=torch.float32).view(-1, 1, 1, 1) / (n + 1)
    return tail * (1 - ramp) + head * ramp


def _finish(out: torch.Tensor, tail: torch.Tensor | None, overlap: int, last: bool, state: dict,
            index: int, first_frame: int) -> SegmentResult:
    out = out.float()
    if tail is not None:
        out = torch.cat([_crossfade(tail, out[:overlap]), out[overlap:]])
    keep = out.shape[0] if last else out.shape[0] - overlap
    return SegmentResult(out[:keep], None if last else out[keep:].clone(), state, index, first_frame)


def _frames(chunks: Iterable[torch.Tensor]) -> Iterator[torch.Tensor]:
    shape = None
    for chunk in chunks:
        if shape is None:
            shape = tuple(chunk.shape[1:])
        elif tuple(chunk.shape[1:]) != shape:
            raise InputError(f"frames change size from {shape} to {tuple(chunk.shape[1:])}; expected one size")
        yield from chunk.unbind(0)


@dataclass
class SegmentInput:
    index: int
    first_frame: int
    lr: torch.Tensor                # [n,3,h,w]
    lead: torch.Tensor | None       # the LR frame before it (None for the video's first segment)
    last: bool


def segment_inputs(chunks: Iterable[torch.Tensor], segment: int, overlap: int,
                   resume: Resume | None = None) -> Iterator[SegmentInput]:
    """Cut a stream of LR chunks [n,3,h,w] into overlapping segments; with ``resume``, the frames before
    ``resume.first_frame`` are read through and numbering continues from ``resume.segment``."""
    check_segmenting(segment, overlap)
    stride = segment - overlap
    frames = _frames(chunks)
    first, index, lead = 0, 0, None
    if resume is not None:
        first, index = resume.first_frame, resume.segment
        for i, frame in enumerate(frames):
            if resume.finished or i < first - 1:
                continue
            lead = frame
            break
        if resume.finished:
            return
    buffer: list[torch.Tensor] = []
    for frame in frames:
        buffer.append(frame)
        if len(buffer) > segment:                  # a frame exists after this segment: it is not the last
            yield SegmentInput(index, first, torch.stack(buffer[:segment]), lead, False)
            lead, buffer = buffer[stride - 1], buffer[stride:]
            first, index = first + stride, index + 1
    if buffer:
        yield SegmentInput(index, first, torch.stack(buffer), lead, True)


def _checked(out: torch.Tensor, s: SegmentInput) -> torch.Tensor:
    if out.shape[0] != s.lr.shape[0]:
        raise InputError(f"segment {s.index}: {s.lr.shape[0]} frames in, {out.shape[0]} out; expected the same")
    return out


def run_segments(chunks: Iterable[torch.Tensor], process: Process, segment: int, overlap: int,
                 reporter: Reporter | None = None, resume: Resume | None = None) -> Iterator[SegmentResult]:
    """Yield each segment's finished output (frames [n,3,H,W], float 0..1) in order, for a stream of LR
    chunks [n,3,h,w]. Every frame is output exactly once.

    With ``resume``, the frames before ``resume.first_frame`` are read through
    (not processed) and the segments continue from ``resume.segment``.
    """
    reporter = get_reporter(reporter)
    previous = resume.previous if resume is not None else SegmentResult(torch.zeros(0), None, {})
    for s in segment_inputs(chunks, segment, overlap, resume):
        reporter.check_interrupt()
        out, state = process(s.lr, s.lead, previous.state, None if s.last else segment - overlap - 1,
                             s.first_frame)
        previous = _finish(_checked(out, s), previous.tail, overlap, s.last, state, s.index, s.first_frame)
        reporter.update(len(previous.frames))
        yield previous


def run_segments_in_parallel(chunks: Iterable[torch.Tensor], submit: Callable, collect: Callable, segment: int,
                             overlap: int, reporter: Reporter | None = None, resume: Resume | None = None,
                             in_flight: int = 4) -> Iterator[SegmentResult]:
    """``run_segments`` for segments that carry no state (the fast path): ``submit(segment_input)`` starts
    one anywhere (e.g. on a Ray worker) and returns a handle, ``collect(handle)`` waits for its output.
    At most ``in_flight`` segments are out at once (memory stays flat); outputs are crossfaded and
    yielded strictly in order, so the frames equal ``run_segments``'s."""
    reporter = get_reporter(reporter)
    previous = resume.previous if resume is not None else SegmentResult(torch.zeros(0), None, {})
    pending: list[tuple[SegmentInput, object]] = []

    def finish_oldest() -> SegmentResult:
        s, handle = pending.pop(0)
        return _finish(_checked(collect(handle), s), previous.tail, overlap, s.last, {}, s.index, s.first_frame)

    for s in segment_inputs(chunks, segment, overlap, resume):
        reporter.check_interrupt()
        pending.append((s, submit(s)))
        if len(pending) >= in_flight:
            previous = finish_oldest()
            reporter.update(len(previous.frames))
            yield previous
    while pending:
        previous = finish_oldest()
        reporter.update(len(previous.frames))
        yield previous
