"""The detail relay: keyframe selection, warp-and-gate on synthetic motion with a known answer, cuts, strength."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vsr_core.data import CameraPath, photo, virtual_camera_clip
from vsr_core.errors import InputError
from vsr_core.metrics import psnr_y
from vsr_core.flow import DISFlow
from vsr_core.relay import keyframe_detail, nearest_keyframes, relay_clip, scene_starts, select_keyframes

pytestmark = pytest.mark.usefixtures("one_thread")


# ---------------------------------------------------------------- keyframes
def test_every_n_with_first_and_last():
    assert select_keyframes(20, 8) == [0, 8, 16, 19]
    assert select_keyframes(17, 8) == [0, 8, 16]
    assert select_keyframes(1, 8) == [0]
    assert select_keyframes(5, 1) == [0, 1, 2, 3, 4]


def test_each_scene_has_its_own_first_and_last_keyframe():
    # scenes 0-10, 11-24: the grid of every 8th frame, each scene's first and last
    assert select_keyframes(25, 8, cuts=[11]) == [0, 8, 10, 11, 16, 24]


def test_nearest_keyframes_stay_in_their_scene():
    keys = select_keyframes(25, 8, cuts=[11])
    assert nearest_keyframes(9, keys, [11]) == (8, 10)
    assert nearest_keyframes(12, keys, [11]) == (11, 16)
    assert nearest_keyframes(8, keys, [11]) == (8, 8)
    assert nearest_keyframes(3, [0], []) == (0, None)


def test_fast_motion_is_not_a_cut_but_a_new_shot_is():
    pan = _photo_clip("astronaut", 6)
    assert scene_starts(pan) == []
    assert scene_starts(torch.cat([pan, _photo_clip("coffee", 3)]), first_index=100) == [106]


@pytest.mark.parametrize("kwargs", [dict(num_frames=0, every=8), dict(num_frames=10, every=0),
                                    dict(num_frames=10, every=2.5), dict(num_frames=10, every=4, cuts=[12])])
def test_keyframe_settings_are_checked(kwargs):
    with pytest.raises(InputError):
        select_keyframes(**kwargs)


def _texture(h: int, w: int, seed: int = 0) -> torch.Tensor:
    """A colour texture with detail at every scale: noise blurred at several widths, summed."""
    g = torch.Generator().manual_seed(seed)
    out = torch.zeros(1, 3, h, w)
    for k, amp in ((1, 0.25), (3, 0.35), (9, 0.4)):
        n = torch.rand(1, 3, h + 2 * k, w + 2 * k, generator=g)
        out += amp * F.avg_pool2d(n, 2 * k + 1, stride=1)[..., :h, :w] if k > 1 else amp * n[..., k:-k, k:-k]
    return ((out - out.mean()) * 2.0 + 0.5).clamp(0, 1)


def _panning_clip(frames: int, size: int = 96, step: int = 2, seed: int = 0) -> torch.Tensor:
    big = _texture(size + step * frames, size + step * frames, seed)
    return torch.cat([big[..., t * step:t * step + size, t * step:t * step + size] for t in range(frames)])


def _faithful(hr: torch.Tensor) -> torch.Tensor:
    """What a faithful x4 upscaler keeps: the frame at 1/4 size, bicubic back."""
    lr = F.avg_pool2d(hr, 4)
    return F.interpolate(lr, scale_factor=4, mode="bicubic", align_corners=False).clamp(0, 1)


def test_known_motion_carries_the_truth_between_keyframes():
    """A pan over a texture with detail down to single pixels: a tenth of a pixel of flow error costs the finest
    of it, so the chained flows' small drift shows (+5.3 to +6.1 dB; flows straight to the keyframes: +7 to +15
    on this pan, which is what they are good at, at the price of jitter: next test)."""
    hr = _panning_clip(9)
    faithful = _faithful(hr)
    out = relay_clip(faithful, {0: hr[0], 8: hr[8]}, scale=4)
    inner = (slice(None), slice(None), slice(16, -16), slice(16, -16))   # away from what enters the frame
    for t in (2, 4, 6):
        gain = psnr_y(out[t:t + 1][inner], hr[t:t + 1][inner]) - psnr_y(faithful[t:t + 1][inner],
                                                                         hr[t:t + 1][inner])
        assert gain > 5.0, (t, gain)


def test_chained_flows_move_the_carried_detail_with_the_picture():
    """Detail carried to frames t and t+1 along flows chained through neighbours agrees with the true 2 px
    step between them better than along flows estimated straight to the keyframe (whose errors differ from
    frame to frame: the texture jitters)."""
    from vsr_core.relay.clip import frame_carried
    from vsr_core.relay.motion import KeyframeFlows
    hr = _panning_clip(9)
    faithful = _faithful(hr)
    details = {k: keyframe_detail(hr[k][None], faithful[k:k + 1], 4) for k in (0, 8)}
    dis = DISFlow("medium")

    class Straight:
        def pair(self, t, k, span):
            return dis(faithful[t:t + 1], faithful[k:k + 1]), dis(faithful[k:k + 1], faithful[t:t + 1])

    def jitter(flows):
        carried = {t: frame_carried(t, faithful, details, (), flows) for t in range(1, 8)}
        return np.mean([float((carried[t + 1][i][0][..., 16:-18, 16:-18] - carried[t][i][0][..., 18:-16, 18:-16])
                               .abs().mean()) for t in range(1, 7) for i in (0, 1)])
    assert jitter(KeyframeFlows(faithful, dis)) < 0.85 * jitter(Straight())


def test_flows_compose_and_chains_hold_one_span():
    from vsr_core.relay.motion import KeyframeFlows, compose
    a = torch.zeros(1, 2, 8, 8)
    a[:, 0] = 1.0
    b = torch.zeros(1, 2, 8, 8)
    b[:, 1] = torch.arange(8.0).view(1, 8)          # b -> c depends on x: read at x + 1
    ac = compose(a, b)
    assert torch.allclose(ac[:, 0], torch.ones(1, 8, 8)) and torch.allclose(ac[0, 1, :, :7], torch.arange(1.0, 8.0))
    calls = []

    def estimator(x, y):
        calls.append(1)
        return torch.zeros(1, 2, *x.shape[-2:])
    flows = KeyframeFlows(torch.rand(9, 3, 8, 8), estimator)
    for t in range(1, 8):
        flows.pair(t, 0, (0, 8)), flows.pair(t, 8, (0, 8))
    assert len(calls) == 16                          # two per neighbour pair, made once for the span
    calls.clear()
    far = KeyframeFlows(torch.rand(40, 3, 8, 8), estimator)
    for t in range(1, 30):                           # keyframes 30 frames apart: straight flows, no chain held
        far.pair(t, 0, (0, 30))
    assert len(calls) == 2 * 29 and far.chains == {}


def test_a_keyframe_shows_its_own_detail():
    hr = _panning_clip(3)
    faithful = _faithful(hr)
    out = relay_clip(faithful, {0: hr[0]}, scale=4)
    assert psnr_y(out[:1], hr[:1]) > psnr_y(faithful[:1], hr[:1]) + 6.0


def test_strength_zero_is_the_faithful_output_and_strength_scales():
    hr = _panning_clip(5)
    faithful = _faithful(hr)
    assert torch.equal(relay_clip(faithful, {0: hr[0], 4: hr[4]}, scale=4, strength=0.0), faithful)
    half = relay_clip(faithful, {0: hr[0], 4: hr[4]}, scale=4, strength=0.5)
    full = relay_clip(faithful, {0: hr[0], 4: hr[4]}, scale=4, strength=1.0)
    added_half, added_full = (half - faithful).abs().mean(), (full - faithful).abs().mean()
    assert 0.4 < float(added_half / added_full) < 0.6


def _photo_clip(name: str, frames: int) -> torch.Tensor:
    clip = virtual_camera_clip(photo(name), frames, (96, 96), CameraPath(pan=(2.0, 1.0)))
    return torch.from_numpy(clip).permute(0, 3, 1, 2).float() / 255


def test_detail_does_not_cross_a_cut():
    hr = torch.cat([_photo_clip("astronaut", 4), _photo_clip("coffee", 4)])
    faithful = _faithful(hr)
    cuts = scene_starts(faithful)
    assert cuts == [4]
    # keyframes only in the first scene: the second scene must stay faithful
    out = relay_clip(faithful, {0: hr[0], 3: hr[3]}, scale=4, cuts=cuts)
    assert torch.equal(out[4:], faithful[4:])
    assert psnr_y(out[1:3], hr[1:3]) > psnr_y(faithful[1:3], hr[1:3]) + 3.0


def test_a_keyframe_that_disagrees_with_the_frame_is_gated():
    """A different picture as 'keyframe' of a static scene: its detail is carried only where the
    faithful frames say the motion is trusted, and the photometric gate sees nothing wrong here, so use
    a lighting change instead: frame 1 is much darker than frame 0, the key's detail must not be pasted."""
    hr = _panning_clip(2, step=0)
    dark = hr.clone()
    dark[1] *= 0.3
    faithful = _faithful(dark)
    out = relay_clip(faithful, {0: dark[0]}, scale=4)
    carried = (out[1] - faithful[1]).abs().mean()
    own = (out[0] - faithful[0]).abs().mean()
    assert float(carried) < 0.2 * float(own)


def test_bad_keyframes_are_named():
    faithful = torch.rand(3, 3, 32, 32)
    with pytest.raises(InputError, match="keyframe index 5"):
        relay_clip(faithful, {5: torch.rand(3, 32, 32)}, scale=4)
    with pytest.raises(InputError, match="keyframe 0: .*expected a \\[3,32,32\\]"):
        relay_clip(faithful, {0: torch.rand(3, 16, 16)}, scale=4)
    with pytest.raises(InputError, match="NaN"):
        relay_clip(faithful, {0: torch.full((3, 32, 32), float("nan"))}, scale=4)
    with pytest.raises(InputError, match="strength"):
        relay_clip(faithful, {0: torch.rand(3, 32, 32)}, scale=4, strength=1.5)


def test_streamed_segments_pick_the_clips_keyframes():
    """Segments that start on the grid pick exactly what select_keyframes picks over the whole clip."""
    from vsr_core.pipeline.relay import relay_segment_frames, segment_keyframes
    every, total, cuts = 4, 40, [13, 24, 25, 27]
    whole = select_keyframes(total, every, cuts)
    size = relay_segment_frames(every)
    picked = set()
    for first in range(0, total, size - 1):
        n = min(size, total - first)
        local_cuts = [c - first for c in cuts if first < c < first + n]
        picked |= {first + k for k in segment_keyframes(n, first, every, local_cuts)}
    assert sorted(picked) == whole


def test_the_streamed_picker_picks_what_the_clip_picker_picks():
    from vsr_core.pipeline.relay import pick_keyframes, pick_keyframes_stream
    clip = torch.cat([_photo_clip("astronaut", 9), _photo_clip("coffee", 12)])
    whole = pick_keyframes(clip, 4)
    assert whole == [0, 4, 8, 9, 12, 16, 20]                # the cut at 9: 8 ends a scene, 9 starts one
    for size in (1, 3, 7, 21):
        indices, frames = pick_keyframes_stream(clip.split(size), 4)
        assert indices == whole, size
        assert torch.equal(frames, clip[whole])
