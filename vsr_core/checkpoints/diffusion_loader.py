"""A diffusion checkpoint as Guided Sample runs it: UNet, its empty-prompt context and its VAE."""
from __future__ import annotations

from ..diffusion.model import SD_LATENT_SCALE, DiffusionModel
from ..errors import InputError
from .loader import load_components


def load_diffusion_model(path: str, dtype=None, overrides: dict | None = None):
    """(DiffusionModel, VAE or None) from an SD-family, StableSR, MGLD-VSR or shipped checkpoint.

    The conditioning is the empty prompt: computed with the checkpoint's text
    encoder when it has one, else the context stored with the shipped weights.
    """
    parts = load_components(path, ("unet", "vae", "text", "context"), dtype=dtype, overrides=overrides)
    if "unet" not in parts:
        raise InputError(f"'{path}' holds no UNet; expected a diffusion checkpoint (a VAE file is loaded as a VAE)")
    unet = parts["unet"]
    stored = parts.pop("context", None)
    if "text" in parts:
        from ..models.text_encoder import null_prompt_embedding
        context = null_prompt_embedding(parts.pop("text")).float()
    else:
        context = stored
    model = DiffusionModel(unet, context=None if context is None else context.float(),
                           prediction=unet.config.prediction,
                           latent_scale=getattr(unet, "latent_scale", SD_LATENT_SCALE))
    return model, parts.get("vae")


def load_vae(path: str, dtype=None, name: str | None = None):
    """The VAE a file holds: plain SD, StableSR's CFW decoder or MGLD-VSR's temporal video VAE (detected from
    its keys); ``name``: how the error names the file."""
    parts = load_components(path, ("vae",), dtype=dtype)
    if "vae" not in parts:
        raise InputError(f"{name or repr(path)} holds no VAE (first_stage_model.* or encoder./decoder. keys)")
    return parts["vae"]
