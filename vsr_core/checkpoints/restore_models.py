"""The restore graph's models, loaded in one place: the given files, else the shipped ones (as
workflows/full_pipeline_default), on a device; and the files' identities that key a restore cache."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..errors import InputError
from ..file_identity import file_identity
from ..settings import check_settings, setting
from ..speed import DEVICES, compile_forward, pick_device, use_channels_last


@dataclass(frozen=True)
class RestoreModelSettings:
    """Which files `vsr restore` loads and how (load_restore_models' arguments)."""
    diffusion: str | None = setting(None, "diffusion checkpoint (SD 2.x / StableSR / MGLD-VSR; default: the "
                                          "shipped tiny UNet)", name="diffusion_model")
    vae: str | None = setting(None, "VAE file (default: the shipped tiny video VAE, or the diffusion "
                                    "checkpoint's own VAE when one is given)")
    upscaler: str | None = setting(None, "a VideoUpscaler .safetensors (default: the shipped weights)",
                                   name="upscaler_weights")
    refiner: str | None = setting(None, "refiner .safetensors (default: the shipped refiner)",
                                  name="refiner_weights")
    device: str = setting("auto", "where the networks run (auto: CUDA if any)", choices=DEVICES)
    channels_last: bool = setting(False, "NHWC convolution weights (faster VAE on this project's test CPU; "
                                         "see README)")
    compile: bool = setting(False, "torch.compile the UNet (about a minute of compiling per shape; no gain "
                                   "measured on a CPU)")

    def __post_init__(self):
        check_settings(self)


@dataclass
class RestoreModels:
    upscaler: torch.nn.Module
    diffusion: object                 # DiffusionModel
    vae: torch.nn.Module              # encodes the upscaled frames and decodes the samples
    refiner: torch.nn.Module
    files: dict = field(default_factory=dict)   # name -> file identity, for the cache key


def restore_model_paths(scale: int = 4, diffusion: str | None = None, vae: str | None = None,
                        upscaler: str | None = None, refiner: str | None = None) -> dict:
    """name -> the file load_restore_models reads for it (given, else shipped; None: none read)."""
    from .shipped import default_upscaler_path, shipped_path
    return {"diffusion": diffusion or shipped_path("diffusion"),
            "vae": vae or (shipped_path("video_vae") if diffusion is None else None),
            "upscaler": upscaler or default_upscaler_path(scale), "refiner": refiner or shipped_path("refiner")}


def restore_model_files(paths: dict) -> dict:
    """name -> file identity of each file in `paths` (the cache key's part for the models)."""
    return {k: file_identity(p) for k, p in paths.items() if p is not None}


def load_restore_models(scale: int = 4, diffusion: str | None = None, vae: str | None = None,
                        upscaler: str | None = None, refiner: str | None = None, device: str = "cpu",
                        channels_last: bool = False, compile: bool = False) -> RestoreModels:
    """The models of the full graph: given files, else the shipped ones (as the default workflow),
    on `device` ("auto": CUDA when there is one), optionally channels-last and compiled."""
    from .diffusion_loader import load_diffusion_model, load_vae
    from .shipped import load_given_or_default_upscaler, load_refiner

    paths = restore_model_paths(scale, diffusion, vae, upscaler, refiner)
    model, own_vae = load_diffusion_model(paths["diffusion"])
    if paths["vae"] is not None:
        own_vae = load_vae(paths["vae"], name=f"--vae '{paths['vae']}'")
    if own_vae is None:
        raise InputError(f"diffusion checkpoint '{paths['diffusion']}' has no VAE; give a VAE file too")
    up = load_given_or_default_upscaler(upscaler, scale)
    models = RestoreModels(up, model, own_vae, load_refiner(paths["refiner"]), restore_model_files(paths))
    target = pick_device(device)
    for module in (models.upscaler, model.unet, models.vae, models.refiner):
        module.to(target)
        if channels_last:
            use_channels_last(module)
    if compile:
        compile_forward(model.unet)
    return models
