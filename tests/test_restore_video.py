"""`restore`: the full diffusion graph streamed over a file, resumable, with the out-of-memory fallback."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from vsr_core.cli import main
from vsr_core.errors import Interrupted
from vsr_core.pipeline.guided_sample import SampleSettings
from vsr_core.jobs.restore import restore_file
from vsr_core.checkpoints.restore_models import load_restore_models
from vsr_core.jobs.job_settings import JobSettings
from vsr_core.pipeline.restore_video import RestoreSettings
from vsr_core.video import open_video

from conftest import StopAfter, write_media, read_video as read

SETTINGS = RestoreSettings(segment=6, segment_overlap=2, sample=SampleSettings(steps=2), precision="fp32")


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def models():
    return load_restore_models()


@pytest.fixture(scope="module")
def source(tmp_path_factory, clip):
    return write_media(tmp_path_factory.mktemp("in") / "in.mkv", clip[:11, :24, :40])


@pytest.fixture(scope="module")
def reference(tmp_path_factory, source, models):
    out = tmp_path_factory.mktemp("ref") / "out.mkv"
    assert restore_file(source, str(out), SETTINGS, JobSettings(format="ffv1"), models) == 11
    return read(out)


def test_restores_every_frame_at_x4_at_the_same_rate_and_cleans_its_cache(tmp_path, source, models, reference):
    assert reference.shape == (11, 96, 160, 3)
    assert reference.std() > 10  # a picture, not a flat frame
    out = tmp_path / "out.mkv"
    restore_file(source, str(out), SETTINGS, JobSettings(format="ffv1"), models)
    assert open_video(str(out)).fps == open_video(str(source)).fps
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mkv"]  # the default cache folder is gone
    np.testing.assert_array_equal(read(out), reference)              # deterministic


def test_a_cancelled_run_leaves_no_output_and_resumes_to_the_same_frames(tmp_path, source, models, reference):
    out, cache = tmp_path / "out.mkv", tmp_path / "cache"
    with pytest.raises(Interrupted):
        restore_file(source, str(out), SETTINGS, JobSettings(format="ffv1", cache_dir=str(cache)), models,
                     reporter=StopAfter(4))
    assert not out.exists()
    assert sorted(p.name for p in cache.iterdir()) == ["chunk_000000.json", "chunk_000000.mkv", "job.json",
                                                       "state_000000.safetensors"]
    log = StopAfter(10 ** 9)
    restore_file(source, str(out), SETTINGS, JobSettings(format="ffv1", cache_dir=str(cache)), models, reporter=log)
    assert any("resuming:" in m and "in 1 chunk(s)" in m for m in log.messages)
    np.testing.assert_array_equal(read(out), reference)
    assert not cache.exists()


class Picky(torch.nn.Module):
    """The UNet, but out of memory on latents wider than `limit` (as a small GPU would be)."""

    def __init__(self, unet, limit):
        super().__init__()
        self.unet, self.limit = unet, limit

    def forward(self, x, *args, **kwargs):
        if x.shape[-1] > self.limit:
            raise torch.OutOfMemoryError(f"CUDA out of memory (latent width {x.shape[-1]})")
        return self.unet(x, *args, **kwargs)


def test_out_of_memory_shrinks_the_tiles_and_finishes(tmp_path, source, models):
    picky = dataclasses.replace(models, diffusion=dataclasses.replace(models.diffusion,
                                                                      unet=Picky(models.diffusion.unet, 20)))
    log = StopAfter(10 ** 9)
    out = tmp_path / "out.mkv"
    assert restore_file(source, str(out), SETTINGS, JobSettings(format="ffv1"), picky, reporter=log) == 11
    oom = [m for m in log.messages if "out of memory" in m]
    assert len(oom) == 2 and "tile_latent 64 -> 32" in oom[0] and "tile_latent 32 -> 16" in oom[1]
    assert read(out).shape == (11, 96, 160, 3)


def test_command_line(tmp_path, source):
    out = tmp_path / "out.mkv"
    args = ["restore", str(source), str(out), "--format", "ffv1", "--steps", "1", "--segment", "8", "--threads", "1"]
    assert main(args) == 0 and read(out).shape == (11, 96, 160, 3)
    assert main(args) == 2                                    # exists, no --overwrite
    assert main(args + ["--overwrite", "--segment-overlap", "5"]) == 2  # overlap >= window


def test_another_settings_change_starts_over(tmp_path, source, models):
    cache = tmp_path / "cache"
    with pytest.raises(Interrupted):
        restore_file(source, str(tmp_path / "a.mkv"), SETTINGS, JobSettings(format="ffv1", cache_dir=str(cache)),
                     models, reporter=StopAfter(4))
    log = StopAfter(10 ** 9)
    other = dataclasses.replace(SETTINGS, sample=SampleSettings(steps=2, seed=1))
    restore_file(source, str(tmp_path / "a.mkv"), other, JobSettings(format="ffv1", cache_dir=str(cache)), models,
                 reporter=log)
    assert any("starting over" in m for m in log.messages)


def test_bf16_autocast_and_channels_last_stay_close_to_float32(tmp_path, source, reference):
    """The CPU stands in for a GPU here: the same autocast context and memory format, reduced precision."""
    from vsr_core.metrics import psnr_y
    fast = load_restore_models(channels_last=True)
    out = tmp_path / "out.mkv"
    restore_file(source, str(out), dataclasses.replace(SETTINGS, precision="bf16"), JobSettings(format="ffv1"), fast)
    got = torch.from_numpy(read(out)).permute(0, 3, 1, 2).float() / 255
    want = torch.from_numpy(reference).permute(0, 3, 1, 2).float() / 255
    assert psnr_y(got, want) > 30


def test_model_files_are_checked():
    from vsr_core.checkpoints.shipped import shipped_path
    from vsr_core.errors import InputError
    with pytest.raises(InputError, match="has no VAE; give a VAE file too"):
        load_restore_models(diffusion=shipped_path("diffusion"))
    with pytest.raises(InputError, match="holds no VAE"):
        load_restore_models(vae=shipped_path("diffusion"))
    with pytest.raises(InputError, match="precision='fp8'"):
        RestoreSettings(precision="fp8")
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="device 'cuda' was asked for"):
            load_restore_models(device="cuda")


def test_the_cache_key_names_every_model_file_read_including_the_shipped_refiner(models):
    from vsr_core.checkpoints.shipped import shipped_path
    from vsr_core.file_identity import file_identity
    assert models.files["refiner"] == file_identity(shipped_path("refiner"))
    assert set(models.files) == {"diffusion", "vae", "upscaler", "refiner"}
