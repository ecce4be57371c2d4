"""Which frames get generated detail: every N-th frame, the first and the last, and the first frame of every
scene (a cut), so that detail is never carried across a cut.

Pure functions over frame counts and low-resolution frames; the relay (relay/transfer.py) then carries each
keyframe's detail to the frames of its own scene only.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import InputError

# A cut: consecutive frames differ both in layout (mean absolute difference of brightness-matched 32x32 grey
# thumbnails, 0..1) and in colour (total variation distance of 8x8x8-bin colour histograms, 0..1). Measured
# on the real training clips' LR frames: fast motion reached 0.15 in layout but stayed under 0.2 in colour;
# the cuts inside generated multi-shot clips measured 0.14-0.25 and 0.49-0.67. A strong lighting change
# also passes both (0.14, 0.36): a new keyframe there is what the relay wants anyway.
CUT_THRESHOLD = 0.10
CUT_COLOUR_THRESHOLD = 0.30
THUMB_SIDE = 32
HIST_BINS = 8


def _thumbs(frames: torch.Tensor) -> torch.Tensor:
    grey = frames.float().mean(dim=1, keepdim=True)
    h, w = grey.shape[-2:]
    side = min(THUMB_SIDE, h, w)
    t = F.adaptive_avg_pool2d(grey, (side, side)).flatten(1)
    return t - t.mean(dim=1, keepdim=True)      # brightness-matched: a fade or flash is not a cut


def _histograms(frames: torch.Tensor) -> torch.Tensor:
    q = (frames.float().clamp(0, 1) * (HIST_BINS - 1e-3)).long()
    index = (q[:, 0] * HIST_BINS + q[:, 1]) * HIST_BINS + q[:, 2]
    hist = torch.stack([torch.bincount(i.flatten(), minlength=HIST_BINS ** 3) for i in index]).float()
    return hist / hist.sum(dim=1, keepdim=True)


def cut_scores(frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """([T-1] layout change, [T-1] colour change) between frames i and i+1 of ``frames`` [T,3,H,W] (0..1)."""
    if frames.shape[0] < 2:
        return frames.new_zeros(0), frames.new_zeros(0)
    t, hist = _thumbs(frames), _histograms(frames)
    return (t[1:] - t[:-1]).abs().mean(dim=1), 0.5 * (hist[1:] - hist[:-1]).abs().sum(dim=1)


def scene_starts(frames: torch.Tensor, first_index: int = 0) -> list[int]:
    """Indices (offset by ``first_index``) of frames of ``frames`` [T,3,H,W] that start a new scene."""
    layout, colour = cut_scores(frames)
    cut = (layout > CUT_THRESHOLD) & (colour > CUT_COLOUR_THRESHOLD)
    return [first_index + i + 1 for i in torch.nonzero(cut).flatten().tolist()]


def select_keyframes(num_frames: int, every: int, cuts: list[int] | tuple[int, ...] = ()) -> list[int]:
    """Keyframe indices of a clip of ``num_frames``: every ``every``-th frame (counted from frame 0, so a
    clip cut into segments that start on that grid picks the same frames), and the first and last frame of
    each scene (``cuts``: indices where a scene starts)."""
    if not isinstance(num_frames, int) or num_frames < 1:
        raise InputError(f"num_frames={num_frames!r}; expected an integer >= 1")
    if not isinstance(every, int) or isinstance(every, bool) or every < 1:
        raise InputError(f"keyframe_every={every!r}; expected an integer >= 1 (frames between keyframes)")
    bad = [c for c in cuts if not 0 <= c < num_frames]
    if bad:
        raise InputError(f"scene cuts {bad} lie outside the clip's {num_frames} frames")
    starts = sorted({0, *cuts})
    ends = [s - 1 for s in starts[1:]] + [num_frames - 1]
    return sorted(set(range(0, num_frames, every)) | set(starts) | set(ends))


def scene_of(index: int, cuts: list[int] | tuple[int, ...]) -> int:
    """The scene number of frame ``index`` (0 before the first cut)."""
    return sum(1 for c in cuts if c <= index)


def scene_bounds(index: int, cuts: list[int] | tuple[int, ...], num_frames: int) -> tuple[int, int]:
    """(first, last) frame of the scene that holds frame ``index`` in a clip of ``num_frames``."""
    first = max((c for c in cuts if c <= index), default=0)
    return first, min((c for c in cuts if c > index), default=num_frames) - 1


def nearest_keyframes(index: int, keyframes: list[int], cuts: list[int] | tuple[int, ...] = ()
                      ) -> tuple[int | None, int | None]:
    """(previous, next) keyframes of ``index`` within its own scene (either None where there is none);
    a keyframe itself is its own previous and next."""
    scene = scene_of(index, cuts)
    same = [k for k in keyframes if scene_of(k, cuts) == scene]
    before = [k for k in same if k <= index]
    after = [k for k in same if k >= index]
    return (before[-1] if before else None), (after[0] if after else None)
