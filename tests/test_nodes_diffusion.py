"""Loaders, Guided Sample and Temporal Decode through the V1 contract, on tiny checkpoint files
laid out like the real ones (a full ldm StableSR-style .ckpt and an MGLD video VAE)."""
from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest
import torch

from vsr_core.data import CameraPath, photo, virtual_camera_clip
from vsr_core.diffusion.motion_guidance import warping_loss
from vsr_core.models.sft import EncoderUNetModelWT, StructEncoderConfig
from vsr_core.models.text_encoder import OpenCLIPTextEncoder, TextEncoderConfig
from vsr_core.models.unet import UNetConfig, UNetModel
from vsr_core.models.vae import AutoencoderKL, VAEConfig
from vsr_core.models.video_vae import VideoAutoencoderKL
from conftest import load_node_pack

ROOT = Path(__file__).resolve().parents[1]
UNET = dict(model_channels=32, channel_mult=(1, 2), num_res_blocks=1, attention_resolutions=(1, 2),
            num_head_channels=16, context_dim=32, sft=True, sft_channels=32)
ENC = dict(model_channels=32, out_channels=32, channel_mult=(1, 1), num_res_blocks=1,
           attention_resolutions=(1, 2), num_heads=4)
VAE = VAEConfig(ch=32, ch_mult=(1, 2, 2, 2), num_res_blocks=1)


def _randomised(module):
    torch.manual_seed(0)
    for m in module.modules():  # zero-initialised layers would make every output trivially 0
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
            m.reset_parameters()
    return module


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    (root / "vsr_diffusion").mkdir()
    (root / "vsr_vae").mkdir()
    sd = {}
    parts = {"model.diffusion_model.": _randomised(UNetModel(UNetConfig(**UNET))),
             "structcond_stage_model.": _randomised(EncoderUNetModelWT(StructEncoderConfig(**ENC))),
             "first_stage_model.": _randomised(AutoencoderKL(VAE)),
             "cond_stage_model.model.": OpenCLIPTextEncoder(TextEncoderConfig(width=32, heads=2, layers=2,
                                                                              mlp_width=64, embed_dim=32))}
    for prefix, module in parts.items():
        sd.update({prefix + k: v for k, v in module.state_dict().items()})
    torch.save({"state_dict": sd}, root / "vsr_diffusion" / "tiny_stablesr.ckpt")
    video_vae = _randomised(VideoAutoencoderKL(VAE))
    torch.save({"state_dict": video_vae.state_dict()}, root / "vsr_vae" / "tiny_video_vae.ckpt")
    return root


@pytest.fixture(scope="module")
def classes():
    return load_node_pack(str(ROOT))


@pytest.fixture(scope="module")
def clip():
    frames = virtual_camera_clip(photo("astronaut"), 4, (60, 64), CameraPath(pan=(2.0, 1.0)))
    return torch.from_numpy(frames).float() / 255   # 60 rows: not a multiple of 8, padded inside


SAMPLE = dict(steps=3, seed=1, sampler="ddpm", guidance_scale=10.0, guidance_rule="log_variance",
              mgld_flow_offset=False, guidance_start=0.0, guidance_end=1.0, guide_through_network=False,
              window=3, window_overlap=1,
              tile_latent=64, tile_overlap_latent=32)


def test_full_graph_on_tiny_checkpoints(classes, models_dir, clip, monkeypatch):
    monkeypatch.setenv("VSR_MODELS_DIR", str(models_dir))
    assert "tiny_stablesr.ckpt" in classes["VSR_LoadDiffusionModel"].INPUT_TYPES()["required"]["ckpt_name"][0]
    model, vae = classes["VSR_LoadDiffusionModel"]().load("tiny_stablesr.ckpt", "auto", "none", "auto")
    assert model.context.shape == (1, 77, 32) and vae is not None
    (video_vae,) = classes["VSR_LoadVAE"]().load("tiny_video_vae.ckpt", "auto")
    flow, _preview = classes["VSR_EstimateFlow"]().estimate(clip, "dis", "fast", "none found", 12, "unit",
                                                            "squared", 0)
    (latent,) = classes["VSR_GuidedSample"]().sample(model, **SAMPLE, upscaled=clip, vae=vae, flow=flow)
    assert latent["samples"].shape == (4, 4, 8, 8) and latent["vsr_size"] == (60, 64)
    for decoder in (vae, video_vae):
        (frames,) = classes["VSR_TemporalDecode"]().decode(latent, decoder, -1.0, 3, 1, 64, 16, upscaled=clip)
        assert frames.shape == clip.shape and torch.isfinite(frames).all()
        assert 0 <= frames.min() and frames.max() <= 1


def test_guidance_on_lowers_the_warping_error_of_the_node_output(classes, models_dir, clip, monkeypatch):
    monkeypatch.setenv("VSR_MODELS_DIR", str(models_dir))
    model, vae = classes["VSR_LoadDiffusionModel"]().load("tiny_stablesr.ckpt", "auto", "none", "auto")
    flow, _ = classes["VSR_EstimateFlow"]().estimate(clip, "dis", "fast", "none found", 12, "unit",
                                                     "squared", 0)
    runs = {}
    for scale in (0.0, 10.0):
        args = dict(SAMPLE, guidance_scale=scale)
        runs[scale] = classes["VSR_GuidedSample"]().sample(model, **args, upscaled=clip, vae=vae, flow=flow)[0]
    latent_flow = flow.resized(8, 8)
    assert warping_loss(runs[10.0]["samples"], latent_flow) < warping_loss(runs[0.0]["samples"], latent_flow)


def test_loaders_explain_what_is_missing(classes, tmp_path, monkeypatch):
    monkeypatch.setenv("VSR_MODELS_DIR", str(tmp_path))
    # With no user files, only the pack's shipped tiny model is offered.
    assert classes["VSR_LoadDiffusionModel"].INPUT_TYPES()["required"]["ckpt_name"][0] == \
        ["default (shipped tiny diffusion UNet)"]
    with pytest.raises(ValueError, match="models/vsr_diffusion"):
        classes["VSR_LoadDiffusionModel"]().load("none found", "auto", "none", "auto")
    with pytest.raises(ValueError, match="not in ComfyUI/models/vsr_vae/"):
        classes["VSR_LoadVAE"]().load("missing.ckpt", "auto")


def test_guided_sample_input_errors(classes, models_dir, clip, monkeypatch):
    monkeypatch.setenv("VSR_MODELS_DIR", str(models_dir))
    model, vae = classes["VSR_LoadDiffusionModel"]().load("tiny_stablesr.ckpt", "auto", "none", "auto")
    node = classes["VSR_GuidedSample"]()
    with pytest.raises(ValueError, match="needs `upscaled` frames"):
        node.sample(model, **SAMPLE)
    with pytest.raises(ValueError, match="need a `vae`"):
        node.sample(model, **SAMPLE, upscaled=clip)
    with pytest.raises(ValueError, match="window_overlap"):
        node.sample(model, **dict(SAMPLE, window=2, window_overlap=2), upscaled=clip, vae=vae)
    with pytest.raises(ValueError, match="expected VSR_DIFFUSION"):
        node.sample("not a model", **SAMPLE, upscaled=clip, vae=vae)


def test_a_core_comfyui_model_drives_the_sampler(classes, models_dir, clip, monkeypatch):
    """A stand-in for a ModelPatcher whose apply_model is ComfyUI's k-diffusion call."""
    monkeypatch.setenv("VSR_MODELS_DIR", str(models_dir))
    model, vae = classes["VSR_LoadDiffusionModel"]().load("tiny_stablesr.ckpt", "auto", "none", "auto")
    plain = _randomised(UNetModel(UNetConfig(**dict(UNET, sft=False))))
    from vsr_core.diffusion.schedules import scaled_linear_betas
    ac = torch.cumprod(1 - scaled_linear_betas(), 0).float()

    class BaseModel:
        latent_format = types.SimpleNamespace(scale_factor=0.18215)
        model_sampling = types.SimpleNamespace(sigmas=((1 - ac) / ac) ** 0.5)

        def apply_model(self, x, sigma, c_crossattn=None):
            a = 1 / (1 + sigma[0] ** 2)
            t = int((ac - a).abs().argmin())
            eps = plain(x * a ** 0.5, torch.full((x.shape[0],), t), c_crossattn)
            return x - sigma.view(-1, 1, 1, 1) * eps

    patcher = types.SimpleNamespace(model=BaseModel(), model_options={}, patch_model=lambda: None)
    comfy = types.ModuleType("comfy")
    comfy.model_management = types.SimpleNamespace(load_models_gpu=lambda models: None,
                                                   get_torch_device=lambda: torch.device("cpu"))
    bridge = sys.modules[classes["VSR_GuidedSample"].__module__.rsplit(".", 1)[0] + ".comfy_bridge"]
    monkeypatch.setattr(bridge, "comfy", comfy, raising=False)
    cond = [[torch.randn(1, 5, 32), {}]]
    node = classes["VSR_GuidedSample"]()
    with pytest.raises(ValueError, match="needs `conditioning`"):
        node.sample(patcher, **SAMPLE, upscaled=clip, vae=vae)
    (latent,) = node.sample(patcher, **SAMPLE, upscaled=clip, vae=vae, conditioning=cond)
    assert latent["samples"].shape == (4, 4, 8, 8) and torch.isfinite(latent["samples"]).all()


class _WindowLimited(torch.nn.Module):
    """The UNet, out of memory for more than two frames at once (as a small GPU would be)."""

    def __init__(self, unet):
        super().__init__()
        self.inner = unet

    def forward(self, x, *args, **kwargs):
        if x.shape[0] > 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 MiB")
        return self.inner(x, *args, **kwargs)


def test_guided_sample_shrinks_tiles_then_windows_when_memory_runs_out(classes, models_dir, clip, monkeypatch,
                                                                       capsys):
    import dataclasses
    monkeypatch.setenv("VSR_MODELS_DIR", str(models_dir))
    model, vae = classes["VSR_LoadDiffusionModel"]().load("tiny_stablesr.ckpt", "auto", "none", "auto")
    small = dataclasses.replace(model, unet=_WindowLimited(model.unet))
    (latent,) = classes["VSR_GuidedSample"]().sample(small, **SAMPLE, upscaled=clip, vae=vae)
    log = capsys.readouterr()
    messages = [line for line in (log.out + log.err).splitlines() if "out of memory" in line]
    assert len(messages) == 3  # tile 64 -> 32 -> 16 (the 8x8 latent still in one tile), then window 3 -> 2
    assert "window 3 -> 2" in messages[-1]
    small = dict(SAMPLE, window=2, tile_latent=16, tile_overlap_latent=8)
    (direct,) = classes["VSR_GuidedSample"]().sample(model, **small, upscaled=clip, vae=vae)
    torch.testing.assert_close(latent["samples"], direct["samples"])
