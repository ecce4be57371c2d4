"""The relay's learned fusion (#28): it starts as the hand-designed relay, strength 0 is the faithful output,
shapes and bad inputs, the true motion of virtual-camera clips, the cached samples and the train task."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vsr_core.data import CameraPath, photo, virtual_camera_clip
from vsr_core.data.real_videos import MANIFEST
from vsr_core.data.virtual_camera import SceneMotion, camera_flow, random_scene_motion
from vsr_core.errors import InputError
from vsr_core.flow.warp import backward_warp, inside_mask
from vsr_core.models.relay_fusion import RelayFusion
from vsr_core.relay import relay_clip

pytestmark = pytest.mark.usefixtures("one_thread")


def _clip(frames=5, size=(48, 64), scale=4):
    hr = virtual_camera_clip(photo("astronaut"), frames, size, CameraPath(pan=(1.5, 0.5)))
    hr = torch.from_numpy(hr).permute(0, 3, 1, 2).float() / 255
    faithful = F.interpolate(F.avg_pool2d(hr, scale), scale_factor=scale, mode="bicubic",
                             align_corners=False).clamp(0, 1)
    return hr, faithful


def _trained(seed=0) -> RelayFusion:
    """A fusion whose head is no longer zero: it changes what it is given."""
    torch.manual_seed(seed)
    fusion = RelayFusion(channels=8, blocks=1)
    torch.nn.init.normal_(fusion.head.weight, std=0.05)
    return fusion.eval()


def test_untrained_fusion_is_exactly_the_hand_designed_relay():
    hr, faithful = _clip()
    keys = {0: hr[0], 4: hr[4]}
    hand = relay_clip(faithful, keys, 4)
    assert torch.equal(relay_clip(faithful, keys, 4, fusion=RelayFusion().eval()), hand)
    assert torch.equal(relay_clip(faithful, keys, 4, strength=0.5, fusion=RelayFusion().eval()),
                       relay_clip(faithful, keys, 4, strength=0.5))


def test_strength_zero_is_the_faithful_output_and_keyframes_keep_their_detail():
    hr, faithful = _clip()
    keys = {0: hr[0], 4: hr[4]}
    fusion = _trained()
    assert torch.equal(relay_clip(faithful, keys, 4, strength=0.0, fusion=fusion), faithful)
    fused, hand = relay_clip(faithful, keys, 4, fusion=fusion), relay_clip(faithful, keys, 4)
    assert torch.equal(fused[0], hand[0]) and torch.equal(fused[4], hand[4])   # keyframes: the hand path
    assert not torch.equal(fused[2], hand[2])                                  # between them: the network's
    assert fused.min() >= 0 and fused.max() <= 1


def test_sides_that_are_no_multiple_of_four_are_padded_and_cropped_back():
    hr, faithful = _clip(frames=3, size=(36, 44), scale=2)       # x2 output 36x44 -> 9x11 cells of 4... plus pad
    hr, faithful = hr[..., :34, :42], faithful[..., :34, :42]
    out = relay_clip(faithful, {0: hr[0], 2: hr[2]}, 2, fusion=_trained())
    assert out.shape == faithful.shape and torch.isfinite(out).all()


def test_fusion_shapes_and_bad_inputs():
    fusion = RelayFusion(channels=8, blocks=1)
    x3, x1 = torch.rand(2, 3, 16, 24), torch.rand(2, 1, 16, 24)
    assert fusion(x3, x3, x1, x3, x1, x3, torch.rand(2, 2)).shape == (2, 3, 16, 24)
    with pytest.raises(InputError, match="multiples of 4"):
        y3, y1 = torch.rand(1, 3, 15, 16), torch.rand(1, 1, 15, 16)
        fusion(y3, y3, y1, y3, y1, y3, torch.rand(1, 2))
    with pytest.raises(InputError, match="channels >= 1"):
        RelayFusion(channels=0)


def test_camera_flow_is_the_true_motion():
    path, center, size = CameraPath(pan=(3.0, -2.0), zoom=1.01, roll=0.4), (250.0, 260.0), (48, 64)
    clip = torch.from_numpy(virtual_camera_clip(photo("astronaut"), 5, size, path, start=center))
    frames = clip.permute(0, 3, 1, 2).float() / 255
    flow = torch.from_numpy(camera_flow(path, 1, 4, size, center))[None]
    inside = inside_mask(flow)
    error = ((backward_warp(frames[4:5], flow) - frames[1:2]).abs() * inside).sum() / inside.sum() / 3
    shifted = ((backward_warp(frames[4:5], flow + 0.5) - frames[1:2]).abs() * inside).sum() / inside.sum() / 3
    assert error < 0.01 and error < shifted / 2



def test_scene_motion_flow_is_the_true_motion():
    """Non-rigid scene motion on top of the camera: the flow still maps frame t onto frame k, clearly better
    than the camera's flow alone; a motion too steep to stay one-to-one is refused."""
    path, center, size = CameraPath(pan=(2.0, 1.0)), (250.0, 260.0), (64, 64)
    scene = random_scene_motion(np.random.default_rng(3), 9, max_speed=2.0)
    clip = torch.from_numpy(virtual_camera_clip(photo("astronaut"), 9, size, path, start=center, scene=scene))
    frames = clip.permute(0, 3, 1, 2).float() / 255

    def error(flow):
        flow = torch.from_numpy(flow)[None]
        inside = inside_mask(flow)
        return float(((backward_warp(frames[8:9], flow) - frames[1:2]).abs() * inside).sum() / inside.sum() / 3)

    true, camera_only = camera_flow(path, 1, 8, size, center, scene), camera_flow(path, 1, 8, size, center)
    assert np.abs(true - camera_only).max() > 2           # the scene itself moved
    assert error(true) < 0.015 and error(true) < error(camera_only) / 2
    qx, qy = np.array([10.0, 200.0]), np.array([30.0, 80.0])
    assert np.allclose(scene.unmoved(*scene.moved(qx, qy, 8), 8), (qx, qy), atol=1e-6)
    with pytest.raises(InputError, match="too steep"):
        SceneMotion(((5.0, 0.0, 0.5, 0.0, 0.0),)).unmoved(qx, qy, 2)

# ---------------------------------------------------------------- data and training
def _real_videos(folder, clip) -> str:
    np.save(os.path.join(folder, "a.npy"), np.concatenate([clip, clip[::-1]]))
    manifest = {"packages": {}, "skipped": [], "rules": {},
                "clips": [{"id": "p/a.webp", "file": "a.npy", "frames": 2 * len(clip), "split": "train"}]}
    with open(os.path.join(folder, MANIFEST), "w") as f:
        json.dump(manifest, f)
    return str(folder)


def _tiny_upscaler():
    from vsr_core.models.upscaler import VideoUpscaler
    return VideoUpscaler(channels=8, heads=2, feat_blocks=1, prop_blocks=1, attn_blocks=1, attn_window=4).eval()


def _bicubic_keyframe(calls: list):
    """A stand-in 'detail model': bicubic x4, each call recorded in ``calls``."""
    def keyframe(lr):
        calls.append(lr.shape)
        return F.interpolate(lr, scale_factor=4, mode="bicubic", align_corners=False).clamp(0, 1)
    return keyframe


def _make_samples(tmp_path, clip, calls: list) -> str:
    """Two samples (one of each kind) of a tiny upscaler, the 'detail model' bicubic; returns the folder."""
    from vsr_core.train.relay_fusion_data import prepare_fusion_data
    videos, upscaler, keyframe = _real_videos(tmp_path, clip), _tiny_upscaler(), _bicubic_keyframe(calls)
    for _ in range(2):          # the second run finds both samples and makes nothing
        prepare_fusion_data(str(tmp_path / "fusion" / "train"), videos, 2, upscaler, keyframe, lr_side=12,
                            log=lambda s: None)
    return str(tmp_path / "fusion")


def test_samples_are_made_once_and_hold_what_the_relay_computes(tmp_path, clip):
    calls = []
    out = os.path.join(_make_samples(tmp_path, clip, calls), "train")
    samples = [torch.load(os.path.join(out, f"sample_00000{i}.pt"), weights_only=True) for i in (0, 1)]
    # the detail model runs on the generated sample's two keyframes, once: the second run kept both samples
    assert [s["kind"] for s in samples] == ["truth", "generated"] and len(calls) == 2
    for s in samples:
        assert s["inputs"].shape == (7, 14, 48, 48) and s["target"].shape == (7, 3, 48, 48)
        assert s["nearness"][0].tolist() == pytest.approx([0.5, 1 / 8])               # frame 1: 1 and 7 away



def test_generated_samples_with_scene_motion_carry_its_true_flow(tmp_path, clip):
    """--deform 1: the generated sample's camera draws are those of --deform 0 (samples made before it stay
    the same) plus a scene motion, and the sample stores the flow of both; a share outside 0..1 is refused
    before anything is written."""
    from vsr_core.data.real_videos import RealVideoClips
    from vsr_core.train.relay_fusion_data import _camera, _next_flows, prepare_fusion_data
    videos, upscaler, keyframe = _real_videos(tmp_path, clip), _tiny_upscaler(), _bicubic_keyframe([])
    out = str(tmp_path / "fusion")
    with pytest.raises(InputError, match="deform=1.5"):
        prepare_fusion_data(out, videos, 2, upscaler, keyframe, lr_side=12, log=lambda s: None, deform=1.5)
    assert not os.path.exists(out)
    prepare_fusion_data(out, videos, 2, upscaler, keyframe, lr_side=12, log=lambda s: None, deform=1.0)
    clips = RealVideoClips(videos, "train")
    _, path, center, scene = _camera(clips, np.random.default_rng([0, 1]), 48, deform=1.0)
    _, path0, center0, none = _camera(clips, np.random.default_rng([0, 1]), 48)
    assert (path, center) == (path0, center0) and none is None and scene.steepness() > 0
    stored = torch.load(os.path.join(out, "sample_000001.pt"), weights_only=True)["flows_next"]
    assert torch.equal(stored, _next_flows(path, center, 48, scene))
    assert (stored.float() - _next_flows(path, center, 48).float()).abs().amax() > 0.1

def test_train_task_runs_a_few_steps_and_writes_a_card(tmp_path, clip):
    from vsr_core.checkpoints.shipped import load_relay_fusion
    from vsr_core.train.trainer import TrainConfig, train
    data = _make_samples(tmp_path, clip, [])
    cfg = TrainConfig(task="relay_fusion", out=str(tmp_path / "run"), steps=2, batch=2, lr_size=8, warmup=1,
                      eval_every=2, fusion_data=data, model={"channels": 8, "blocks": 1})
    metrics = train(cfg, log=lambda s: None)
    assert {"train_tail/truth/psnr_y_fused", "train_tail/generated/hf_fused"} <= set(metrics)
    fusion = load_relay_fusion(str(tmp_path / "run" / "model.safetensors"))
    assert fusion.config.channels == 8 and fusion.card["task"] == "relay_fusion"


def test_train_task_without_samples_names_the_prepare_command(tmp_path):
    from vsr_core.train.trainer import TrainConfig, train
    with pytest.raises(InputError, match="prepare-relay-fusion"):
        train(TrainConfig(task="relay_fusion", out=str(tmp_path / "run"), fusion_data=str(tmp_path)))
    with pytest.raises(InputError, match="--fusion-data"):
        train(TrainConfig(task="relay_fusion", out=str(tmp_path / "run2")))


# ---------------------------------------------------------------- the setting
def test_relay_fusion_setting_picks_the_shipped_network_or_the_hand_designed_mix():
    from vsr_core.pipeline.relay import load_fusion
    from vsr_core.pipeline.upscale_settings import UpscaleSettings
    assert load_fusion("hand") is None
    shipped = load_fusion("learned")
    assert isinstance(shipped, RelayFusion) and shipped.card["architecture"] == "RelayFusion"
    with pytest.raises(InputError, match="relay_fusion='average'"):
        load_fusion("average")
    with pytest.raises(InputError, match="relay_fusion"):
        UpscaleSettings(relay_fusion="average")


def test_relay_frames_follow_the_setting(tmp_path):
    from vsr_core.pipeline.relay import relay_frames
    from vsr_core.pipeline.upscale_settings import UpscaleSettings
    hr, _ = _clip(frames=5, size=(48, 64))
    lr = F.avg_pool2d(hr, 4)
    model = _tiny_upscaler()
    keys = hr[[0, 4]]
    hand = relay_frames(lr, keys, "0, 4", model, UpscaleSettings(relay_fusion="hand", detail_strength=1.0))
    learned = relay_frames(lr, keys, "0, 4", model, UpscaleSettings(detail_strength=1.0))
    assert torch.equal(relay_frames(lr, keys, "0, 4", model, UpscaleSettings(detail_strength=1.0), fusion=None), hand)
    assert torch.equal(learned[0], hand[0]) and not torch.equal(learned[2], hand[2])


def test_flips_and_transposes_carry_the_flow_along():
    """Warping the augmented frame t+1 by the augmented flow is the augmented warp: the flow's components
    follow every flip and the transpose."""
    from vsr_core.train.relay_fusion_task import _augment
    later = torch.rand(1, 3, 16, 16)
    flow = torch.stack([torch.full((16, 16), 1.5), torch.full((16, 16), -0.5)])
    for seed in range(8):
        rng = np.random.default_rng(seed)
        stack, moved = _augment(torch.cat([later, backward_warp(later, flow[None])]), flow, rng)
        inside = inside_mask(moved[None])[0, 0] > 0
        warped = backward_warp(stack[:1], moved[None])[0]
        assert torch.allclose(warped[:, inside], stack[1][:, inside], atol=1e-5)


def test_temporal_error_is_zero_for_an_error_that_moves_with_the_scene():
    from vsr_core.train.relay_fusion_task import temporal_error
    flow = torch.stack([torch.full((16, 16), 1.0), torch.zeros(16, 16)])[None]
    later = torch.rand(1, 3, 16, 16)
    still = torch.cat([backward_warp(later, flow), later])
    assert float(temporal_error(still, flow)) < 2e-3
    assert float(temporal_error(torch.cat([torch.rand(1, 3, 16, 16), later]), flow)) > 0.1
    assert float(temporal_error(torch.rand(2, 3, 16, 16), torch.zeros(1, 2, 16, 16))) == 0.0   # no known motion
