"""The relay as a file job: keyframes from a folder (as the streaming node reads them), streamed in
keyframe-aligned segments, cancelled and resumed to the same frames, keyed by the keyframes' content."""
from __future__ import annotations

import os

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import StopAfter, write_media, read_video as _read
from vsr_core.checkpoints.shipped import load_default_upscaler
from vsr_core.data import CameraPath, photo, virtual_camera_clip
from vsr_core.errors import InputError, Interrupted
from vsr_core.jobs.relay import folder_keyframes, relay_file
from vsr_core.metrics import psnr_y
from vsr_core.relay import select_keyframes
from vsr_core.pipeline.upscale_settings import UpscaleSettings
from vsr_core.jobs.job_settings import JobSettings

pytestmark = pytest.mark.usefixtures("one_thread")
FRAMES, EVERY = 20, 4


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """A panning clip: its HR truth, the LR file, and a folder with the truth at every keyframe."""
    root = tmp_path_factory.mktemp("relay")
    hr = virtual_camera_clip(photo("astronaut"), FRAMES, (64, 96), CameraPath(pan=(2.0, 1.0)))
    lr = F.interpolate(torch.from_numpy(hr).permute(0, 3, 1, 2).float(), scale_factor=0.25, mode="area")
    lr = lr.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    src = write_media(root / "in.mkv", lr)
    keys = root / "keys"
    keys.mkdir()
    for k in select_keyframes(FRAMES, EVERY):
        cv2.imwrite(str(keys / f"frame_{k:06d}.png"), cv2.cvtColor(hr[k], cv2.COLOR_RGB2BGR))
    return hr, src, keys


def _psnr(a, b):
    return psnr_y(torch.from_numpy(a).permute(0, 3, 1, 2).float() / 255, torch.from_numpy(b).permute(0, 3, 1, 2).float() / 255)


def test_folder_keyframes_relayed_resumed_to_the_same_frames(tmp_path, scene):
    hr, src, keys = scene
    model = load_default_upscaler(4)
    whole = tmp_path / "whole.mkv"
    assert relay_file(src, str(whole), model, folder_keyframes(str(keys)), UpscaleSettings(keyframe_every=EVERY),
                      JobSettings(format="ffv1")) == FRAMES
    faithful = tmp_path / "faithful.mkv"
    relay_file(src, str(faithful), model, folder_keyframes(str(keys)),
               UpscaleSettings(keyframe_every=EVERY, detail_strength=0.0), JobSettings(format="ffv1"))
    out, base = _read(whole), _read(faithful)
    assert out.shape == hr.shape
    assert _psnr(out, hr) > _psnr(base, hr) + 2.0

    resumed, cache = tmp_path / "resumed.mkv", tmp_path / "cache"
    with pytest.raises(Interrupted):
        relay_file(src, str(resumed), model, folder_keyframes(str(keys)), UpscaleSettings(keyframe_every=EVERY),
                   JobSettings(format="ffv1", cache_dir=str(cache), chunk_frames=4), reporter=StopAfter(12))
    assert not resumed.exists()
    log = StopAfter(10 ** 9)
    relay_file(src, str(resumed), model, folder_keyframes(str(keys)), UpscaleSettings(keyframe_every=EVERY),
               JobSettings(format="ffv1", cache_dir=str(cache), chunk_frames=4), reporter=log)
    assert any("resuming" in m for m in log.messages)
    np.testing.assert_array_equal(_read(resumed), out)


def test_changed_keyframes_start_over_and_missing_ones_are_named(tmp_path, scene):
    hr, src, keys = scene
    model = load_default_upscaler(4)
    cache = tmp_path / "cache"
    with pytest.raises(Interrupted):
        relay_file(src, str(tmp_path / "a.mkv"), model, folder_keyframes(str(keys)),
                   UpscaleSettings(keyframe_every=EVERY), JobSettings(format="ffv1", cache_dir=str(cache),
                   chunk_frames=4), reporter=StopAfter(12))
    other = tmp_path / "other_keys"
    other.mkdir()
    for name in os.listdir(keys):
        img = cv2.imread(str(keys / name))
        cv2.imwrite(str(other / name), 255 - img)
    log = StopAfter(10 ** 9)
    relay_file(src, str(tmp_path / "a.mkv"), model, folder_keyframes(str(other)),
               UpscaleSettings(keyframe_every=EVERY), JobSettings(format="ffv1", cache_dir=str(cache),
               chunk_frames=4), reporter=log)
    assert any("starting over" in m for m in log.messages)
    os.remove(other / "frame_000008.png")
    with pytest.raises(InputError, match="keyframe 8 is missing"):
        relay_file(src, str(tmp_path / "b.mkv"), model, folder_keyframes(str(other)),
                   UpscaleSettings(keyframe_every=EVERY), JobSettings(format="ffv1"))
    with pytest.raises(InputError, match="does not exist"):
        folder_keyframes(str(tmp_path / "nowhere"))


def test_the_command_line_relays_a_detail_model_and_strength_zero_is_the_default(tmp_path, scene):
    from safetensors.torch import save_file
    from vsr_core.cli import main
    from vsr_core.models.srvgg import SRVGGConfig, SRVGGNetCompact
    hr, src, _ = scene
    torch.manual_seed(0)
    tiny = SRVGGNetCompact(SRVGGConfig(num_feat=8, num_conv=3, scale=4)).eval()
    weights = tmp_path / "tiny_detail.safetensors"
    save_file({k: v.contiguous() for k, v in tiny.state_dict().items()}, str(weights))
    common = ["--format", "ffv1", "--threads", "1"]
    assert main(["upscale", src, str(tmp_path / "default.mkv"), *common]) == 0
    assert main(["upscale", src, str(tmp_path / "zero.mkv"), "--detail", str(weights), "--detail-strength", "0",
                 *common]) == 0
    np.testing.assert_array_equal(_read(tmp_path / "zero.mkv"), _read(tmp_path / "default.mkv"))
    assert main(["upscale", src, str(tmp_path / "relay.mkv"), "--detail", str(weights), "--keyframe-every", "4",
                 *common]) == 0
    relayed, default = _read(tmp_path / "relay.mkv"), _read(tmp_path / "default.mkv")
    assert relayed.shape == default.shape == hr.shape and not np.array_equal(relayed, default)
    assert main(["upscale", src, str(tmp_path / "bad.mkv"), "--detail", str(weights), "--detail-strength", "2",
                 *common]) == 2
    assert main(["upscale", src, str(tmp_path / "bad.mkv"), "--detail", str(weights), "--keyframe-every", "0",
                 *common]) == 2
    assert not (tmp_path / "bad.mkv").exists()


def test_the_relay_plans_its_memory_and_refuses_outputs_beyond_8k(tmp_path, scene):
    _, _, keys = scene
    big = write_media(tmp_path / "big.mkv", np.zeros((2, 1200, 2000, 3), np.uint8))
    model = load_default_upscaler(4)
    with pytest.raises(InputError, match="8K"):
        relay_file(big, str(tmp_path / "o.mkv"), model, folder_keyframes(str(keys)),
                   UpscaleSettings(keyframe_every=EVERY), JobSettings(format="ffv1"))
    assert not (tmp_path / "o.mkv").exists()
