"""The shipped tiny diffusion models: they load through load_model / load_components and the
loader nodes' default entries, their cards describe the files, and the whole graph runs on them."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
import torch

from vsr_core.checkpoints import load_components, load_model
from vsr_core.checkpoints.shipped import SHIPPED, read_card, shipped_path
from vsr_core.data import CameraPath, photo, virtual_camera_clip
from vsr_core.models.sft import StructCondUNet
from vsr_core.models.vae import AutoencoderKL
from vsr_core.models.video_vae import VideoAutoencoderKL
from conftest import load_node_pack

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def classes():
    return load_node_pack(str(ROOT))


def _defaults(node) -> dict:
    """Each required widget's default (a combo's first entry), as a fresh node in the UI has them."""
    out = {}
    for name, spec in node.INPUT_TYPES()["required"].items():
        opts = spec[1] if len(spec) > 1 else {}
        if isinstance(spec[0], list):
            out[name] = opts.get("default", spec[0][0])
        elif "default" in opts:
            out[name] = opts["default"]
    return out


# Converted third-party weights, shipped at their own size (float16); the pack's own models stay small.
CONVERTED = {"detail_realesrgan_x4plus": 35e6}     # Real-ESRGAN x4plus, 16.7M parameters


def test_shipped_files_exist_and_are_small():
    total = 0
    for kind, name in SHIPPED.items():
        path = shipped_path(kind)
        if kind in CONVERTED:
            assert os.path.getsize(path) < CONVERTED[kind], name
            continue
        total += os.path.getsize(path)
        assert os.path.getsize(path) < 20e6, name
    assert total < 40e6


@pytest.mark.parametrize("kind", ["diffusion", "video_vae", "vae"])
def test_cards_describe_the_files(kind):
    path = shipped_path(kind)
    card = read_card(path)
    w = card["weights"]
    assert w["file"] == os.path.basename(path) and w["bytes"] == os.path.getsize(path)
    assert w["sha256"] == hashlib.sha256(open(path, "rb").read()).hexdigest()
    assert card["steps"] > 0 and card["training_command"].startswith("python -m vsr_core train-diffusion")
    assert "skimage:coffee" in card["data"]["heldout_never_used"]
    assert "skimage:coffee" not in card["data"]["photos"]
    assert card["latent_scale"] > 0 and card["metrics"]
    json.dumps(card)


def test_shipped_files_load_through_the_library():
    parts = load_components(shipped_path("diffusion"), ("unet", "vae", "text", "context"))
    assert set(parts) == {"unet", "context"}
    unet = parts["unet"]
    assert isinstance(unet, StructCondUNet)
    cfg = unet.config
    assert cfg.sft and cfg.temporal_middle and cfg.sfa_tfa and cfg.prediction == read_card(
        shipped_path("diffusion"))["prediction"]
    assert parts["context"].shape == (1, parts["context"].shape[1], cfg.context_dim)
    assert unet.latent_scale == pytest.approx(read_card(shipped_path("diffusion"))["latent_scale"])
    video = load_model(shipped_path("video_vae"), kind="vae")
    assert isinstance(video, VideoAutoencoderKL) and video.decoder.temporal and video.decoder.fusion_levels
    vae = load_model(shipped_path("vae"), kind="vae")
    assert type(vae) is AutoencoderKL and vae.downsample_factor == video.downsample_factor
    # the video VAE is built on the tiny VAE: same encoder
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    assert torch.allclose(vae.encode(x), video.encode(x), atol=1e-6)


def test_loader_nodes_offer_the_shipped_models_first(classes, tmp_path, monkeypatch):
    monkeypatch.setenv("VSR_MODELS_DIR", str(tmp_path))     # no user models at all
    ckpts = classes["VSR_LoadDiffusionModel"].INPUT_TYPES()["required"]["ckpt_name"][0]
    vaes = classes["VSR_LoadVAE"].INPUT_TYPES()["required"]["vae_name"][0]
    assert ckpts[0].startswith("default (shipped") and "none found" not in ckpts
    assert vaes[0] == "default (shipped tiny video VAE)" and "default (shipped tiny VAE)" in vaes
    model, vae = classes["VSR_LoadDiffusionModel"]().load(ckpts[0], "auto", "none", "auto")
    assert vae is None and model.context is not None
    assert model.latent_scale == pytest.approx(read_card(shipped_path("diffusion"))["latent_scale"])
    assert model.prediction == model.unet.config.prediction
    (video_vae,) = classes["VSR_LoadVAE"]().load(vaes[0], "auto")
    assert isinstance(video_vae, VideoAutoencoderKL)
    (plain,) = classes["VSR_LoadVAE"]().load("default (shipped tiny VAE)", "auto")
    assert type(plain) is AutoencoderKL


def test_full_graph_on_the_shipped_weights(classes, monkeypatch, tmp_path):
    monkeypatch.setenv("VSR_MODELS_DIR", str(tmp_path))
    lr = torch.from_numpy(virtual_camera_clip(photo("coffee"), 4, (32, 32), CameraPath(pan=(1.0, 0.5)))).float() / 255
    up = torch.nn.functional.interpolate(lr.permute(0, 3, 1, 2), scale_factor=4, mode="bicubic",
                                         align_corners=False).clamp(0, 1).permute(0, 2, 3, 1).contiguous()
    model, _ = classes["VSR_LoadDiffusionModel"]().load("default (shipped tiny diffusion UNet)", "auto", "none",
                                                        "auto")
    (vae,) = classes["VSR_LoadVAE"]().load("default (shipped tiny video VAE)", "auto")
    fargs = _defaults(classes["VSR_EstimateFlow"])
    fargs.update(method="dis", dis_preset="fast")
    fargs.pop("frames", None)
    flow, _ = classes["VSR_EstimateFlow"]().estimate(lr, **fargs)
    sample = _defaults(classes["VSR_GuidedSample"])        # the node's own defaults, then a short run
    sample.update(steps=3, seed=0, sampler="ddpm", guidance_scale=10.0, window=4, window_overlap=1)
    (latent,) = classes["VSR_GuidedSample"]().sample(model, **sample, upscaled=up, vae=vae, flow=flow)
    assert latent["samples"].shape[0] == 4
    dargs = _defaults(classes["VSR_TemporalDecode"])
    dargs.update(window=4, window_overlap=1)
    (frames,) = classes["VSR_TemporalDecode"]().decode(latent=latent, vae=vae, upscaled=up, **dargs)
    assert frames.shape == up.shape == (4, 128, 128, 3)
    assert torch.isfinite(frames).all() and 0 <= frames.min() and frames.max() <= 1
    # not a degenerate output: it follows the upscaled input
    assert (frames - up).abs().mean() < 0.15
