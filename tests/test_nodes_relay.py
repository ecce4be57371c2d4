"""Pick Keyframes and Relay Detail through the V1 contract: keyframes made by 'any image model' (here the
truth, as an oracle detail model would) are carried to the other frames."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from conftest import load_node_pack
from vsr_core.data import CameraPath, photo, virtual_camera_clip
from vsr_core.errors import InputError
from vsr_core.metrics import psnr_y

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def classes():
    return load_node_pack(str(ROOT))


@pytest.fixture(scope="module")
def clip():
    hr = torch.from_numpy(virtual_camera_clip(photo("astronaut"), 9, (96, 128), CameraPath(pan=(2.0, 1.0))))
    hr = hr.float() / 255
    lr = F.interpolate(hr.permute(0, 3, 1, 2), scale_factor=0.25, mode="bicubic", antialias=True).clamp(0, 1)
    return hr, lr.permute(0, 2, 3, 1).contiguous()


def _psnr(a, b):
    return psnr_y(a.permute(0, 3, 1, 2), b.permute(0, 3, 1, 2))


def test_pick_then_relay_carries_keyframe_detail(classes, clip):
    hr, lr = clip
    keys_lr, indices = classes["VSR_PickKeyframes"]().pick(lr, 8, True)
    assert indices == "0, 8" and keys_lr.shape == (2, 24, 32, 3)
    (upscaler,) = classes["VSR_LoadUpscaler"]().load("default (shipped x4)")
    keys_hr = hr[[0, 8]]                       # what a perfect detail model would give
    relay = classes["VSR_RelayDetail"]()
    (faithful,) = relay.relay(lr, keys_hr, indices, upscaler, 4, 0.0, True)
    (out,) = relay.relay(lr, keys_hr, indices, upscaler, 4, 1.0, True)
    (upscaled,) = classes["VSR_Upscale"]().upscale(lr, upscaler, 4, True, 12, 2, 512, 0.0)
    assert torch.equal(faithful, upscaled)      # strength 0: the Upscale node's frames
    assert out.shape == hr.shape
    assert _psnr(out[1:8], hr[1:8]) > _psnr(faithful[1:8], hr[1:8]) + 1.0


def test_keyframes_of_another_size_are_fitted_and_bad_ones_named(classes, clip):
    hr, lr = clip
    (upscaler,) = classes["VSR_LoadUpscaler"]().load("default (shipped x4)")
    relay = classes["VSR_RelayDetail"]()
    half = F.interpolate(hr[[0]].permute(0, 3, 1, 2), scale_factor=0.5).permute(0, 2, 3, 1)
    (out,) = relay.relay(lr[:3], half, "0", upscaler, 4, 1.0, True)
    assert out.shape == (3, 96, 128, 3)
    with pytest.raises(InputError, match="keyframe_indices lists 2 frames but 1"):
        relay.relay(lr[:3], half, "0, 2", upscaler, 4, 1.0, True)
    with pytest.raises(InputError, match="distinct frame numbers from 0 to 2"):
        relay.relay(lr[:3], half, "5", upscaler, 4, 1.0, True)
    with pytest.raises(InputError, match="expected frame numbers"):
        relay.relay(lr[:3], half, "first", upscaler, 4, 1.0, True)
    with pytest.raises(InputError, match="aspect ratio"):
        relay.relay(lr[:3], hr[[0], :, :64], "0", upscaler, 4, 1.0, True)


def test_streaming_pick_and_relay(classes, clip, tmp_path, monkeypatch):
    """VIDEO in, keyframes through 'any image model' (the truth), VIDEO out: the streamed picker lists the
    frames the in-memory one does, and the streamed relay carries their detail like Relay Detail."""
    import sys
    from conftest import write_media
    from vsr_core.video import open_video
    monkeypatch.setenv("VSR_TEMP_DIR", str(tmp_path / "temp"))
    hr, lr = clip
    lr_u8 = (lr * 255).round().to(torch.uint8).numpy()
    src = write_media(tmp_path / "in.mkv", lr_u8)
    bridge = sys.modules[classes["VSR_RelayDetailStreaming"].__module__.rsplit(".", 1)[0] + ".comfy_bridge"]
    video = bridge.FileVideo(src)
    keys_lr, indices = classes["VSR_PickKeyframesStreaming"]().pick(video, 4, True)
    assert indices == "0, 4, 8"
    lr_read = torch.from_numpy(open_video(src).read_all()).float() / 255
    assert torch.equal(keys_lr, lr_read[[0, 4, 8]])
    (upscaler,) = classes["VSR_LoadUpscaler"]().load("default (shipped x4)")
    out_video, preview, path = classes["VSR_RelayDetailStreaming"]().relay(
        video, upscaler, 4, 4, 1.0, True, 512, "ffv1-mkv (lossless)", 18, 2, keyframes=hr[[0, 4, 8]],
        keyframe_indices=indices)
    streamed = torch.from_numpy(open_video(path).read_all()).float() / 255
    assert streamed.shape == hr.shape and tuple(preview.shape) == (2, 96, 128, 3)
    (faithful,) = classes["VSR_RelayDetail"]().relay(lr_read, hr[[0, 4, 8]], indices, upscaler, 4, 0.0, True)
    assert _psnr(streamed, hr) > _psnr(faithful, hr) + 1.0
    with pytest.raises(InputError, match="no keyframes"):
        classes["VSR_RelayDetailStreaming"]().relay(video, upscaler, 4, 4, 1.0, True, 512, "h264-mp4", 18, 0)
