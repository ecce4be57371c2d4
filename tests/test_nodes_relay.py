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


def _tiny_detail_file(folder: Path, name: str, scale: int, seed: int) -> str:
    """A tiny random SRVGGNetCompact (Real-ESRGAN's compact architecture) saved as ComfyUI users keep them."""
    from safetensors.torch import save_file
    from vsr_core.models.srvgg import SRVGGConfig, SRVGGNetCompact
    torch.manual_seed(seed)
    model = SRVGGNetCompact(SRVGGConfig(num_feat=8, num_conv=3, scale=scale))
    for p in model.parameters():
        p.data.uniform_(-0.3, 0.3)
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return str(path)


def test_detail_upscale_runs_a_file_from_upscale_models(classes, clip, tmp_path, monkeypatch):
    from vsr_core.checkpoints.detail_loader import load_detail_model
    from vsr_core.errors import CheckpointError
    from vsr_core.pipeline.detail import detail_upscale
    monkeypatch.setenv("VSR_MODELS_DIR", str(tmp_path))
    folder = tmp_path / "upscale_models"
    x4 = _tiny_detail_file(folder, "tiny_x4.safetensors", 4, seed=0)
    _tiny_detail_file(folder, "compact/tiny_x2.safetensors", 2, seed=1)
    node = classes["VSR_DetailUpscale"]
    names = node.INPUT_TYPES()["required"]["detail_model"][0]
    assert names[0].startswith("default (shipped") and {"tiny_x4.safetensors", "compact/tiny_x2.safetensors"} <= set(names)
    assert node.VALIDATE_INPUTS("tiny_x4.safetensors") is True
    assert "upscale_models" in node.VALIDATE_INPUTS("gone.safetensors")

    _, lr = clip
    image = lr[:2, :12, :16]
    (out,) = node().upscale(image, "tiny_x4.safetensors", 4)
    expected = detail_upscale(image.permute(0, 3, 1, 2), load_detail_model(x4))
    assert out.shape == (2, 48, 64, 3) and torch.equal(out, expected.permute(0, 2, 3, 1))
    (half,) = node().upscale(image, "tiny_x4.safetensors", 2, tile_px=64, free_memory_after=False)
    assert half.shape == (2, 24, 32, 3)
    (x2,) = node().upscale(image[0], "compact/tiny_x2.safetensors", 2)      # a single [H,W,3] image too
    assert x2.shape == (1, 24, 32, 3)
    with pytest.raises(InputError, match="scale=4; expected 2 or 4, at most the detail model's x2"):
        node().upscale(image, "compact/tiny_x2.safetensors", 4)

    # the loaded model is reused while its file is unchanged, and read anew when the file is replaced
    model = node._model("tiny_x4.safetensors")
    assert node._model("tiny_x4.safetensors") is model
    _tiny_detail_file(folder, "tiny_x4.safetensors", 4, seed=2)
    assert node._model("tiny_x4.safetensors") is not model
    assert not torch.equal(node().upscale(image, "tiny_x4.safetensors", 4)[0], out)

    torch.save({"encoder.weight": torch.zeros(2)}, str(folder / "other.pth"))
    with pytest.raises(CheckpointError, match="holds neither detail architecture"):
        node().upscale(image, "other.pth", 4)
    with pytest.raises(InputError, match="image has shape"):
        node().upscale(image[..., :2], "tiny_x4.safetensors", 4)


def test_detail_upscale_runs_the_shipped_x4plus(classes, clip):
    """The shipped Real-ESRGAN x4plus on a tiny image: x4, in range, and a picture of the input."""
    _, lr = clip
    image = lr[:1, :12, :16]
    node = classes["VSR_DetailUpscale"]
    (out,) = node().upscale(image, node.INPUT_TYPES()["required"]["detail_model"][1]["default"], 4)
    assert out.shape == (1, 48, 64, 3) and 0 <= out.min() and out.max() <= 1
    # consistent with its input: brought back down to 12x16 it is the input (31.7 dB measured; a flat image of
    # the input's mean gives 16.3 dB)
    back = F.interpolate(out.permute(0, 3, 1, 2), scale_factor=0.25, mode="bicubic", antialias=True)
    assert psnr_y(back, image.permute(0, 3, 1, 2)) > 28
