"""Streaming segments: every frame once, crossfaded overlaps, state handed on, and resuming mid-stream."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from vsr_core.errors import InputError, Interrupted
from vsr_core.ops.frames import float_to_uint8, tchw_to_thwc
from vsr_core.pipeline.segments import Resume, run_segments


def frames(n, h=4, w=6):
    return torch.rand(n, 3, h, w, generator=torch.Generator().manual_seed(n))


def chunked(x, size):
    return [x[i:i + size] for i in range(0, len(x), size)]


class Recorder:
    """A process that upsamples x2 (nearest) and records what it was given."""

    def __init__(self, fail_at=None):
        self.calls, self.fail_at = [], fail_at

    def __call__(self, lr, lead, state, export, first_frame):
        if self.fail_at is not None and first_frame >= self.fail_at:
            raise Interrupted("stop")
        self.calls.append(dict(n=len(lr), lead=None if lead is None else lead.clone(), state=dict(state),
                               export=export, first=first_frame))
        out = torch.nn.functional.interpolate(lr, scale_factor=2, mode="nearest")
        return out, {"seen": torch.tensor([first_frame + len(lr)])}


def run(x, segment, overlap, chunk=5, process=None, resume=None):
    process = process or Recorder()
    out = [float_to_uint8(tchw_to_thwc(s.frames))
           for s in run_segments(chunked(x, chunk), process, segment, overlap, resume=resume)]
    return (np.concatenate(out) if out else np.zeros((0,))), process


def expected(x):
    up = torch.nn.functional.interpolate(x, scale_factor=2, mode="nearest")
    return (up.permute(0, 2, 3, 1) * 255).round().clamp(0, 255).byte().numpy()


@pytest.mark.parametrize("n,segment,overlap,chunk", [(1, 4, 1, 3), (4, 4, 1, 2), (5, 4, 1, 5), (11, 6, 2, 4),
                                                     (12, 6, 2, 7), (13, 5, 0, 3), (30, 8, 3, 8)])
def test_every_frame_once_and_overlaps_agree(n, segment, overlap, chunk):
    x = frames(n)
    out, rec = run(x, segment, overlap, chunk)
    assert out.shape == (n, 8, 12, 3)
    np.testing.assert_array_equal(out, expected(x))  # the same value crossfaded with itself is unchanged
    stride = segment - overlap
    assert [c["first"] for c in rec.calls] == list(range(0, max(n - overlap, 1), stride))[:len(rec.calls)]
    for k, call in enumerate(rec.calls):
        last = k == len(rec.calls) - 1
        assert call["export"] == (None if last else stride - 1)
        assert (call["lead"] is None) == (k == 0)
        if k:
            assert torch.equal(call["lead"], x[call["first"] - 1])
            assert int(call["state"]["seen"]) == rec.calls[k - 1]["first"] + rec.calls[k - 1]["n"]


def test_overlap_is_crossfaded_linearly():
    def constant(lr, lead, state, export, first):  # each segment paints its own grey level
        return torch.full((len(lr), 3, 2, 2), 0.2 if first == 0 else 0.8), {}
    out = torch.cat([s.frames for s in run_segments([torch.zeros(7, 3, 2, 2)], constant, 5, 3)])
    torch.testing.assert_close(out[:, 0, 0, 0], torch.tensor([0.2, 0.2, 0.35, 0.5, 0.65, 0.8, 0.8]))


def test_bad_segmenting_and_size_change():
    with pytest.raises(InputError, match="segment_overlap=4"):
        list(run_segments([frames(3)], Recorder(), 4, 4))
    with pytest.raises(InputError, match="change size"):
        list(run_segments([frames(3), frames(3, h=5)], Recorder(), 2, 1))


def test_resume_continues_from_a_segment_with_its_tail_and_state():
    x = frames(20)
    reference, _ = run(x, 6, 2)
    segments = list(run_segments(chunked(x, 5), Recorder(), 6, 2))
    done = segments[1]                                 # stopped after segment 1 (frames 0..7 final)
    resume = Resume(done.index + 1, done.first_frame + len(done.frames), done)
    out, rec = run(x, 6, 2, resume=resume)
    assert [c["first"] for c in rec.calls] == [8, 12, 16]
    assert torch.equal(rec.calls[0]["lead"], x[7])
    assert int(rec.calls[0]["state"]["seen"]) == 10
    np.testing.assert_array_equal(out, reference[8:])
    finished = Resume(99, 20, segments[-1], finished=True)
    assert run(x, 6, 2, resume=finished)[1].calls == []
