"""Upscale Video (VSR, streaming): core VIDEO in, file-backed VIDEO out, resumable, through the V1 contract
(with the bridge's stand-in for core VIDEO outside ComfyUI)."""
from __future__ import annotations

import os
import sys

import numpy as np
import pytest

from conftest import load_node_pack, write_media
from vsr_core.errors import Interrupted
from vsr_core.jobs.upscale import upscale_file
from vsr_core.progress import Reporter
from vsr_core.video import open_video
from vsr_core.pipeline.upscale_settings import UpscaleSettings
from vsr_core.jobs.job_settings import JobSettings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def classes():
    return load_node_pack(ROOT)


@pytest.fixture
def setup(tmp_path, monkeypatch, clip, classes):
    monkeypatch.setenv("VSR_TEMP_DIR", str(tmp_path / "temp"))
    src = write_media(tmp_path / "in.mkv", np.concatenate([clip] * 5)[:, :24, :32])        # 60 frames
    module = sys.modules[classes["VSR_UpscaleVideoStreaming"].__module__]
    bridge = sys.modules[module.__name__.rsplit(".", 1)[0] + ".comfy_bridge"]
    (upscaler,) = classes["VSR_LoadUpscaler"]().load("default (shipped x4)")
    return src, module, bridge.FileVideo(src), upscaler


ARGS = dict(scale=4, window=6, window_overlap=2, tile_px=512, stabilize=0.0, format="ffv1-mkv (lossless)",
            crf=18, preview_frames=3)


def test_streams_file_to_file_like_the_command_line(tmp_path, setup, classes):
    src, _, video, upscaler = setup
    out_video, preview, path = classes["VSR_UpscaleVideoStreaming"]().upscale(video, upscaler, **ARGS)
    assert out_video.get_stream_source() == path and os.path.dirname(path).startswith(str(tmp_path / "temp"))
    cli = tmp_path / "cli.mkv"
    upscale_file(src, str(cli), UpscaleSettings(window=6, window_overlap=2), JobSettings(format="ffv1"))
    np.testing.assert_array_equal(open_video(path).read_all(), open_video(str(cli)).read_all())
    assert tuple(preview.shape) == (3, 96, 128, 3)
    again = classes["VSR_UpscaleVideoStreaming"]().upscale(video, upscaler, **ARGS)[2]
    assert again == path                                   # the same job queued again: its finished file


def test_cancel_then_queue_again_resumes_to_the_same_file(tmp_path, setup, classes, monkeypatch):
    src, module, video, upscaler = setup
    node = classes["VSR_UpscaleVideoStreaming"]()

    class StopAfter(Reporter):
        done = 0

        def update(self, n=1):
            self.done += n

        def check_interrupt(self):
            if self.done >= 50:                         # after at least three chunks of 15+ frames
                raise Interrupted("cancelled")
    monkeypatch.setattr(module, "make_reporter", StopAfter)
    with pytest.raises(Interrupted):
        node.upscale(video, upscaler, **{**ARGS, "window": 4, "window_overlap": 1})
    temp = tmp_path / "temp" / "vsr_streaming"
    assert [n for n in os.listdir(temp) if not n.startswith(".")] == []      # no half-written result
    caches = [n for n in os.listdir(temp) if n.endswith(".vsr-cache")]
    assert len(caches) == 1 and "chunk_000000.json" in os.listdir(temp / caches[0])

    class Log(Reporter):
        messages = []

        def log(self, message):
            self.messages.append(message)
    monkeypatch.setattr(module, "make_reporter", Log)
    path = node.upscale(video, upscaler, **{**ARGS, "window": 4, "window_overlap": 1})[2]
    resumed = [int(m.split()[1]) for m in Log.messages if m.startswith("resuming: ")]
    assert resumed and 45 <= resumed[0] < 60         # a 60-frame clip is cached in chunks of 15+ frames
    cli = tmp_path / "cli.mkv"
    upscale_file(src, str(cli), UpscaleSettings(window=4, window_overlap=1), JobSettings(format="ffv1"))
    np.testing.assert_array_equal(open_video(path).read_all(), open_video(str(cli)).read_all())


def test_a_video_held_in_memory_is_refused_with_a_reason(setup, classes):
    _, _, _, upscaler = setup

    class InMemory:
        def get_stream_source(self):
            return None
    with pytest.raises(Exception, match="held in memory"):
        classes["VSR_UpscaleVideoStreaming"]().upscale(InMemory(), upscaler, **ARGS)


def test_restore_streams_the_diffusion_graph_like_the_command_line(tmp_path, setup, classes):
    from vsr_core.jobs.restore import restore_file
    from vsr_core.checkpoints.restore_models import RestoreModels
    from vsr_core.pipeline.restore_video import RestoreSettings
    from vsr_core.pipeline.guided_sample import SampleSettings
    from vsr_core.diffusion.motion_guidance import MotionGuidance
    from vsr_core.checkpoints.shipped import load_refiner
    src, _, video, upscaler = setup
    load_model = classes["VSR_LoadDiffusionModel"]
    model, own_vae = load_model().load(load_model.INPUT_TYPES()["required"]["ckpt_name"][0][0], "auto", "none",
                                       "auto")
    load_vae = classes["VSR_LoadVAE"]
    (vae,) = load_vae().load(load_vae.INPUT_TYPES()["required"]["vae_name"][0][0], "auto")
    args = dict(steps=1, sampler="ddpm", seed=3, guidance=10.0, segment=8, segment_overlap=2,
                format="ffv1-mkv (lossless)", crf=18, preview_frames=2)
    short = tmp_path / "short.mkv"
    write_media(short, open_video(src).read_all()[:10])
    bridge = sys.modules[classes["VSR_UpscaleVideoStreaming"].__module__.rsplit(".", 1)[0] + ".comfy_bridge"]
    out_video, preview, path = classes["VSR_RestoreVideoStreaming"]().restore(
        bridge.FileVideo(str(short)), model, vae, upscaler, **args)
    settings = RestoreSettings(segment=8, segment_overlap=2,
                               sample=SampleSettings(steps=1, sampler="ddpm", seed=3, guidance=MotionGuidance(10.0)))
    cli = tmp_path / "cli.mkv"
    restore_file(str(short), str(cli), settings, JobSettings(format="ffv1"),
                 RestoreModels(upscaler, model, vae, load_refiner()))
    np.testing.assert_array_equal(open_video(path).read_all(), open_video(str(cli)).read_all())
    assert tuple(preview.shape) == (2, 96, 128, 3) and out_video.get_stream_source() == path
