"""Temporal windows and spatial tiles reproduce the un-windowed result where they should."""
from __future__ import annotations

import pytest
import torch

from vsr_core.ops.tiling import gaussian_weights, tiled_denoise
from vsr_core.ops.windows import WindowBlender, frame_weights, plan_windows
from vsr_core.errors import InputError


@pytest.mark.parametrize("frames,window,overlap", [(1, 5, 2), (5, 5, 2), (6, 5, 2), (17, 5, 2), (40, 8, 3),
                                                    (9, 4, 0)])
def test_windows_cover_every_frame_and_weights_sum_to_one(frames, window, overlap):
    windows = plan_windows(frames, window, overlap)
    assert windows[0][0] == 0 and windows[-1][1] == frames
    assert all(b - a == min(window, frames) for a, b in windows)
    for (a0, b0), (a1, _b1) in zip(windows, windows[1:]):
        assert a1 <= b0 - overlap and a1 > a0
    total = torch.zeros(frames)
    for (a, b), w in zip(windows, frame_weights(windows)):
        total[a:b] += w
    torch.testing.assert_close(total, torch.ones(frames))


def test_blender_releases_each_frame_once_in_order_and_blends_identical_windows_exactly():
    video = torch.randn(23, 4, 6, 6)
    windows = plan_windows(23, 6, 2)
    blender = WindowBlender(windows)
    out = []
    for k, (a, b) in enumerate(windows):
        out += blender.add(k, video[a:b])
    assert [i for i, _f in out] == list(range(23))
    torch.testing.assert_close(torch.stack([f for _i, f in out]), video)


def test_blender_crossfades_disagreeing_windows():
    windows = plan_windows(8, 5, 2)          # (0,5), (3,8)
    blender = WindowBlender(windows)
    first = blender.add(0, torch.zeros(5, 1))
    assert [i for i, _ in first] == [0, 1, 2]
    rest = dict(blender.add(1, torch.ones(5, 1)))
    assert 0 < rest[3].item() < rest[4].item() < 1 and rest[7].item() == 1


def test_bad_window_settings():
    with pytest.raises(InputError, match="window_overlap"):
        plan_windows(10, 4, 4)
    with pytest.raises(InputError, match="window="):
        plan_windows(10, 0, 0)


def test_tiles_equal_untiled_for_a_local_denoiser_and_when_one_tile_covers_all():
    x = torch.randn(3, 4, 40, 56)

    def local(t, rows, cols):          # any per-pixel function is reproduced exactly
        return torch.tanh(t) * 2, t - 1

    def position_aware(t, rows, cols):  # a condition cropped by location
        cond = torch.arange(40 * 56, dtype=torch.float32).view(40, 56)[rows, cols]
        return t + cond, t

    for fn in (local, position_aware):
        full = fn(x, slice(0, 40), slice(0, 56))
        tiled = tiled_denoise(fn, x, tile=16, overlap=8)
        torch.testing.assert_close(tiled[0], full[0])
        torch.testing.assert_close(tiled[1], full[1])
    whole = tiled_denoise(lambda t, r, c: (t * 3, t), x, tile=64, overlap=8)
    assert torch.equal(whole[0], x * 3)


def test_gaussian_weights_peak_in_the_middle():
    w = gaussian_weights(64, 64)
    assert w.argmax().item() in (31 * 64 + 31, 31 * 64 + 32, 32 * 64 + 31, 32 * 64 + 32)
    assert w[0, 0] < 1e-3 * w.max()
