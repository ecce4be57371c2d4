"""The train-diffusion tasks run on tiny configs, export files every loader reads, and the
bundle format carries the empty-prompt context and the latent scale."""
from __future__ import annotations

import json

import pytest
import torch

from vsr_core.checkpoints import load_components, load_model
from vsr_core.checkpoints.bundle import save_diffusion_bundle
from vsr_core.checkpoints.shipped import read_card
from vsr_core.train.ship import ship_run
from vsr_core.models.cfw import CFWAutoencoderKL
from vsr_core.models.sft import StructCondUNet
from vsr_core.models.vae import AutoencoderKL
from vsr_core.models.video_vae import VideoAutoencoderKL
from vsr_core.train.latent_diffusion import DiffusionTrainConfig, build_tiny_unet
from vsr_core.train.trainer import TASKS, train

PHOTOS = ["skimage:astronaut"]
TINY_VAE = {"ch": 32, "ch_mult": [1, 1, 1], "num_res_blocks": 1}          # factor 4, one CFW level
TINY_UNET = {"channel_mult": [1, 2], "attention_resolutions": [2], "sfa_hidden": 16, "spade_hidden": 16}


def _cfg(tmp, task, **kw):
    base = dict(task=task, out=str(tmp / task), steps=2, batch=1, lr_size=8, eval_every=0, log_every=1,
                photos=PHOTOS, checkpoint_minutes=60.0)
    base.update(kw)
    return DiffusionTrainConfig(**base)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("train_diffusion")
    train(_cfg(tmp, "autoencoder", model=TINY_VAE), log=lambda s: None)
    vae = str(tmp / "autoencoder" / "model.safetensors")
    train(_cfg(tmp, "latent_diffusion", vae=vae, frames=3, model=TINY_UNET), log=lambda s: None)
    train(_cfg(tmp, "temporal_decoder", vae=vae, frames=3), log=lambda s: None)
    return tmp, vae


def test_tasks_are_registered():
    assert {"autoencoder", "latent_diffusion", "temporal_decoder"} <= set(TASKS)


def test_two_steps_of_each_task_export_loadable_files(runs):
    tmp, vae_path = runs
    for task in ("autoencoder", "latent_diffusion", "temporal_decoder"):
        card = json.loads((tmp / task / "model.json").read_text())
        assert card["steps"] == 2 and card["task"] == task
        assert "skimage:astronaut" in card["data"]["photos"]
    vae = load_model(vae_path, kind="vae")
    assert type(vae) is AutoencoderKL and vae.downsample_factor == 4
    # the run state resumes (trainer contract)
    assert (tmp / "latent_diffusion" / "state.pt").exists()


def test_ship_run_writes_bundles_the_loaders_read(runs, tmp_path):
    tmp, vae_run = runs
    vae_path = ship_run("autoencoder", str(tmp / "autoencoder"), "v", out_dir=str(tmp_path))
    unet_path = ship_run("latent_diffusion", str(tmp / "latent_diffusion"), "u", vae=vae_path,
                         out_dir=str(tmp_path))
    video_path = ship_run("temporal_decoder", str(tmp / "temporal_decoder"), "d", vae=vae_path,
                          out_dir=str(tmp_path))

    parts = load_components(unet_path, ("unet", "vae", "text", "context"))
    assert set(parts) == {"unet", "context"}
    unet, ctx = parts["unet"], parts["context"]
    assert isinstance(unet, StructCondUNet)
    assert unet.config.temporal_middle and unet.config.sfa_tfa and unet.config.sft
    assert unet.config.prediction == "v"
    assert ctx.shape == (1, 4, unet.config.context_dim)
    assert unet.latent_scale > 0

    video = load_model(video_path, kind="vae")
    assert isinstance(video, VideoAutoencoderKL) and video.decoder.temporal and video.decoder.fusion == "rdb"
    plain = load_model(vae_path, kind="vae")
    assert isinstance(plain, AutoencoderKL) and not isinstance(plain, CFWAutoencoderKL)
    assert plain.latent_scale > 0

    for path in (vae_path, unet_path, video_path):
        card = read_card(path)
        assert card["weights"]["bytes"] > 0 and len(card["weights"]["sha256"]) == 64
        assert card["training_command"].startswith("python -m vsr_core train-diffusion")

    # the bundle's UNet gives the same output as the trained module
    run_model = build_tiny_unet({**TINY_UNET})
    from safetensors.torch import load_file
    run_model.load_state_dict(load_file(str(tmp / "latent_diffusion" / "model.safetensors")))
    x, c = torch.randn(3, 4, 8, 8), torch.randn(3, 4, 8, 8)
    t = torch.full((3,), 500)
    with torch.no_grad():
        want = run_model.eval()(x, t, c, 3)
        got = unet(x, t, ctx.expand(3, -1, -1), lr_latent=c, num_frames=3)
    assert torch.allclose(want, got, atol=1e-5)


def test_bundle_rejects_a_context_of_the_wrong_width(tmp_path):
    model = build_tiny_unet(TINY_UNET)
    with pytest.raises(ValueError, match="context"):
        save_diffusion_bundle(model.model, str(tmp_path / "x.safetensors"), torch.zeros(1, 4, 7), 1.0)


def test_latent_diffusion_needs_a_vae(tmp_path):
    with pytest.raises(ValueError, match="--vae"):
        train(_cfg(tmp_path, "latent_diffusion", frames=2), log=lambda s: None)
