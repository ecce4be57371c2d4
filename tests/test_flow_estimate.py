"""DIS on a real photo, clip estimation window by window, and bad input."""
import math

import pytest
import torch

from vsr_core.errors import Interrupted, InputError
from vsr_core.flow import (DISFlow, FlowField, backward_warp, estimate_clip_flow, estimate_pair_flow,
                           make_estimator, validate_frames)
from vsr_core.progress import Reporter

torch.set_num_threads(1)
SHIFT = torch.tensor([3.0, 2.0]).view(1, 2, 1, 1)   # content moves +3 px in x, +2 px in y per frame


@pytest.fixture(scope="module")
def astronaut():
    import skimage.data
    return torch.from_numpy(skimage.data.astronaut()).permute(2, 0, 1).float() / 255


def moving_clip(img, t=5, h=96, w=128):
    """Frame i is a crop whose content is displaced by i*(3, 2) px."""
    return torch.stack([img[:, 200 - 2 * i:200 - 2 * i + h, 150 - 3 * i:150 - 3 * i + w] for i in range(t)])


def epe(flow, target, margin=8):
    err = ((flow - target) ** 2).sum(1).sqrt()
    return float(err[..., margin:-margin, margin:-margin].mean())


def test_dis_recovers_known_shift_of_real_photo(astronaut):
    clip = moving_clip(astronaut, t=2)
    flow = estimate_pair_flow(clip[0], clip[1], DISFlow("medium"))
    assert flow.shape == (2, 96, 128) and flow.dtype == torch.float32
    assert epe(flow[None], SHIFT) < 0.15
    back = estimate_pair_flow(clip[1], clip[0], make_estimator("dis", preset="medium"))
    assert epe(back[None], -SHIFT) < 0.15


@pytest.mark.parametrize("preset", ["ultrafast", "fast"])
def test_faster_dis_presets_still_track_motion(astronaut, preset):
    clip = moving_clip(astronaut, t=2)
    assert epe(DISFlow(preset)(clip[:1], clip[1:]), SHIFT) < 1.0


def test_clip_flow_windows_agree_and_masks_make_sense(astronaut):
    clip = moving_clip(astronaut, t=6)
    calls = []

    class Recorder(Reporter):
        def start(self, total, desc=""):
            calls.append(("start", total))

        def update(self, n=1):
            calls.append(("update", n))

    field = estimate_clip_flow(clip, DISFlow("medium"), window=3, reporter=Recorder())
    assert isinstance(field, FlowField)
    assert field.forward.shape == (5, 2, 96, 128) and field.occlusion_forward.shape == (5, 1, 96, 128)
    assert field.method == "dis:medium" and field.num_frames == 6
    assert epe(field.forward, SHIFT) < 0.15 and epe(field.backward, -SHIFT) < 0.15
    # one window, or many: the same numbers
    whole = estimate_clip_flow(clip, DISFlow("medium"), window=6)
    assert torch.allclose(whole.forward, field.forward) and torch.equal(whole.occlusion_backward,
                                                                        field.occlusion_backward)
    # progress: one start, updates covering all T-1 pairs, one per window
    assert calls[0] == ("start", 5)
    assert sum(n for kind, n in calls if kind == "update") == 5
    assert len([c for c in calls if c[0] == "update"]) == math.ceil(5 / 2)
    # occlusion: content leaving through the right/bottom edge, consistent inside
    occ_f, occ_b = field.occlusion_forward, field.occlusion_backward
    assert float(occ_f[..., 8:-8, 8:-8].mean()) < 0.01
    assert float(occ_f[..., :, -2:].mean()) > 0.9 and float(occ_b[..., :, :2].mean()) > 0.9
    # warping frame i+1 with forward[i] reconstructs frame i where not occluded
    warped = backward_warp(clip[1:], field.forward)
    keep = 1 - occ_f
    err = ((warped - clip[:-1]).abs() * keep).sum() / (keep.sum() * 3)
    assert float(err) < 0.02


def test_max_side_computes_small_and_returns_full_size(astronaut):
    clip = moving_clip(astronaut, t=3)
    field = estimate_clip_flow(clip, DISFlow("medium"), max_side=64)
    assert field.size == (96, 128) and "computed_at=48x64" in field.method
    assert epe(field.forward, SHIFT) < 1.0


def test_interrupt_stops_between_windows(astronaut):
    clip = moving_clip(astronaut, t=6, h=32, w=32)

    class Cancel(Reporter):
        n = 0

        def check_interrupt(self):
            self.n += 1
            if self.n > 2:
                raise Interrupted("cancelled")

    with pytest.raises(Interrupted):
        estimate_clip_flow(clip, DISFlow("ultrafast"), window=2, reporter=Cancel())


def test_tiny_frames_do_not_crash_dis():
    # OpenCV's DIS segfaults on e.g. 24x300 with the fast presets; we pad
    for h, w in [(1, 1), (24, 300), (300, 7)]:
        out = DISFlow("ultrafast")(torch.rand(1, 3, h, w), torch.rand(1, 3, h, w))
        assert out.shape == (1, 2, h, w) and torch.isfinite(out).all()


# ---- bad input -------------------------------------------------------------------

def test_single_frame_is_rejected():
    with pytest.raises(InputError, match="at least 2 frames, got 1"):
        estimate_clip_flow(torch.rand(1, 3, 16, 16), DISFlow())


def test_frames_of_different_sizes_are_rejected():
    frames = [torch.rand(3, 32, 32), torch.rand(3, 32, 32), torch.rand(3, 24, 32)]
    with pytest.raises(InputError, match="frame 2 is 24x32.*frame 0 is 32x32"):
        estimate_clip_flow(frames, DISFlow())
    with pytest.raises(InputError, match="same size"):
        estimate_pair_flow(torch.rand(3, 32, 32), torch.rand(3, 32, 40), DISFlow())


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_values_are_rejected(bad):
    clip = torch.rand(4, 3, 16, 16)
    clip[2, 1, 3, 4] = bad
    with pytest.raises(InputError, match="frame 2 contains NaN or infinite values"):
        estimate_clip_flow(clip, DISFlow())


def test_wrong_layout_range_and_options_are_rejected():
    with pytest.raises(InputError, match=r"\[T,H,W,3\]"):
        validate_frames(torch.rand(3, 16, 16, 3))
    with pytest.raises(InputError, match="divide by 255"):
        validate_frames(torch.rand(2, 3, 16, 16) * 255)
    with pytest.raises(InputError, match="dtype"):
        validate_frames(torch.zeros(2, 3, 16, 16, dtype=torch.uint8))
    with pytest.raises(InputError, match="window"):
        estimate_clip_flow(torch.rand(2, 3, 16, 16), DISFlow(), window=1)
    with pytest.raises(InputError, match="preset"):
        make_estimator("dis", preset="slow")
    with pytest.raises(InputError, match="method"):
        make_estimator("farneback")
    with pytest.raises(InputError, match="needs a RAFT checkpoint"):
        make_estimator("raft")


def test_one_call_node_api(astronaut):
    from vsr_core.flow import estimate_flow, flow_preview
    clip = moving_clip(astronaut, t=3, h=64, w=64)
    field = estimate_flow(clip, "dis", preset="medium", window=2, occlusion="mgld")
    assert field.size == (64, 64) and field.num_frames == 3 and field.method == "dis:medium"
    assert epe(field.forward, SHIFT) < 0.3
    preview = flow_preview(field)
    assert preview.shape == (3, 64, 64, 3) and 0 <= float(preview.min()) and float(preview.max()) <= 1
    with pytest.raises(InputError, match="needs a RAFT checkpoint"):
        estimate_flow(clip, "raft")
