"""Phone videos (issue 29/30): a clip stored landscape with a display matrix comes out upright, in every output
format and through the nodes."""
from __future__ import annotations

import sys

import av
import numpy as np
import pytest

from conftest import load_node_pack
from vsr_core.cli import main
from vsr_core.video import open_video
from vsr_core.video.options import Colour
from vsr_core.video.yuv import to_rgb24


def phone_clip(path, rotation: int) -> np.ndarray:
    """6 frames stored 64x48 (landscape), shown turned by `rotation` degrees counter-clockwise (phones
    write -90 for portrait); returns the stored frames as decoded back."""
    stored = np.zeros((6, 48, 64, 3), np.uint8)
    stored[:, :16, :24] = (250, 40, 40)          # a red block in the stored top-left corner
    stored[:, 32:, 40:] = (40, 40, 250)          # a blue one bottom-right
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.options = {"crf": "0"}
        stream.set_display_rotation(rotation)
        for i, f in enumerate(stored):
            frame = av.VideoFrame.from_ndarray(f, format="rgb24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    with av.open(str(path)) as c:
        return np.stack([to_rgb24(f, Colour.default_for(48)) for f in c.decode(video=0)])


def corners(frame: np.ndarray) -> tuple:
    """Which colour is brightest in each corner region (tl, tr, bl, br): 0 red, 2 blue, None dark."""
    h, w = frame.shape[:2]
    out = []
    for rows, cols in ((slice(0, h // 6), slice(0, w // 6)), (slice(0, h // 6), slice(-w // 6, None)),
                       (slice(-h // 6, None), slice(0, w // 6)), (slice(-h // 6, None), slice(-w // 6, None))):
        mean = frame[rows, cols].reshape(-1, 3).mean(0)
        out.append(int(mean.argmax()) if mean.max() > 120 else None)
    return tuple(out)


@pytest.mark.parametrize("rotation", [-90, 90, 180])
def test_reader_gives_frames_as_displayed(tmp_path, rotation):
    stored = phone_clip(tmp_path / "phone.mp4", rotation)
    reader = open_video(str(tmp_path / "phone.mp4"))
    frames = reader.read_all()
    upright = np.rot90(stored, rotation // 90, axes=(1, 2))
    assert (reader.width, reader.height) == (upright.shape[2], upright.shape[1])
    np.testing.assert_array_equal(frames, upright)


@pytest.mark.parametrize("out_name,extra", [("out.mp4", []), ("out.mkv", ["--format", "ffv1"]), ("frames", [])])
def test_phone_clip_comes_out_upright_in_every_format(tmp_path, out_name, extra):
    src = tmp_path / "phone.mov"
    phone_clip(src, -90)                     # portrait: the stored top-left is shown top-right
    out = tmp_path / out_name
    assert main(["upscale", str(src), str(out), "--method", "bicubic", *extra]) == 0
    frames = open_video(str(out)).read_all()
    assert frames.shape == (6, 256, 192, 3)
    assert corners(frames[0]) == (None, 0, 2, None)      # shown turned clockwise, as a player shows it
    if out_name != "frames":
        with av.open(str(out)) as c:             # upright pixels, so no display matrix is left to apply
            assert next(c.decode(video=0)).rotation == 0


def test_phone_clip_upright_through_the_nodes(tmp_path, monkeypatch):
    classes = load_node_pack()
    src = tmp_path / "phone.mp4"
    phone_clip(src, -90)
    frames, _fps, _audio, count = classes["VSR_LoadVideo"]().load(str(src), 0, 0, 1, 0.0)
    assert count == 6 and tuple(frames.shape) == (6, 64, 48, 3)
    assert corners((frames[0].numpy() * 255).astype(np.uint8)) == (None, 0, 2, None)
    monkeypatch.setenv("VSR_TEMP_DIR", str(tmp_path / "temp"))
    module = sys.modules[classes["VSR_UpscaleVideoStreaming"].__module__]
    bridge = sys.modules[module.__name__.rsplit(".", 1)[0] + ".comfy_bridge"]
    (upscaler,) = classes["VSR_LoadUpscaler"]().load("default (shipped x4)")
    _video, preview, path = classes["VSR_UpscaleVideoStreaming"]().upscale(
        bridge.FileVideo(str(src)), upscaler, scale=4, window=6, window_overlap=2, tile_px=512, stabilize=0.0,
        format="ffv1-mkv (lossless)", crf=18, preview_frames=2)
    out = open_video(path).read_all()
    assert out.shape == (6, 256, 192, 3) and corners(out[0]) == (None, 0, 2, None)
    assert preview.shape[1:3] == (256, 192)
