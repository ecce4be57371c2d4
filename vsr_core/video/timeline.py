"""Frame selection over a stream of (timestamp, frame) pairs, without buffering.

Pure generator functions: they never hold more than one frame, so selection
costs no memory whatever the video length.
"""
from __future__ import annotations

from fractions import Fraction
from typing import Iterable, Iterator, TypeVar

from .options import LoadOptions

F = TypeVar("F")
GRID_TOLERANCE = 0.1  # frames; container timestamp rounding is far below this up to 200 fps


def _on_grid(t: float, fps: Fraction) -> Fraction:
    """A source time as an exact Fraction, snapped to the source's frame grid when it is within a tenth of
    a frame of it: containers round timestamps (Matroska to 1 ms, so 7/24 s is stored as 0.292 s), and the
    rounding must not decide whether a frame exists."""
    n = round(t * fps)
    if abs(t - n / fps) <= GRID_TOLERANCE / fps:
        return Fraction(n) / fps
    return Fraction(t).limit_denominator(1_000_000)     # a container time base (1/1000, 1/90000) exactly


def resample_to_rate(timed: Iterable[tuple[float, F]], rate: Fraction,
                     source_fps: Fraction) -> Iterator[tuple[float, F]]:
    """Re-time a stream to a constant `rate`, repeating or dropping frames.

    Output frame k shows the latest source frame whose timestamp is <= k/rate,
    so a 30 fps clip forced to 15 fps keeps every other frame and a 10 fps clip
    forced to 20 fps shows each frame twice. The last source frame lasts one
    source frame (1/source_fps), so N frames at F fps last exactly N/F seconds
    and give N*rate/F frames (rounded up). Times are compared as exact fractions.
    """
    k = 0
    prev = None
    t0 = None
    for t, frame in timed:
        if t0 is None:
            t0 = t
        t = _on_grid(t - t0, source_fps)
        if prev is not None:
            while k / rate < t:
                yield float(k / rate), prev
                k += 1
        prev = frame
        last_t = t
    if prev is not None:
        while k / rate < last_t + 1 / source_fps:
            yield float(k / rate), prev
            k += 1


def select(timed: Iterable[tuple[float, F]], options: LoadOptions,
           source_fps: Fraction) -> Iterator[tuple[float, F]]:
    """Apply force_rate, skip_first_frames, select_every_nth and frame_load_cap."""
    if options.force_rate is not None:
        timed = resample_to_rate(timed, options.force_rate, Fraction(source_fps))
    emitted = 0
    for i, item in enumerate(timed):
        if i < options.skip_first_frames:
            continue
        if (i - options.skip_first_frames) % options.select_every_nth:
            continue
        yield item
        emitted += 1
        if options.frame_load_cap and emitted >= options.frame_load_cap:
            return


def select_indices(count: int, fps: Fraction, options: LoadOptions) -> tuple[list[int], float, Fraction]:
    """The same selection over `count` frames already in memory at a constant `fps`.

    Returns (indices of the kept frames, time of the first kept frame, fps of the result).
    """
    timed = ((float(i / fps), i) for i in range(count))
    picked = list(select(timed, options, fps))
    start = picked[0][0] if picked else 0.0
    return [i for _t, i in picked], start, (options.force_rate or fps) / options.select_every_nth
