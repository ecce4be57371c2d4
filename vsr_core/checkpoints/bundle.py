"""The pack's own diffusion bundles: a UNet file that carries its empty-prompt context
and latent scale, VAE files with their latent scale, and the shipped tiny defaults.

Layout (safetensors; every loader of the pack reads them, ldm tools read the weights):

  tiny_unet.safetensors       model.diffusion_model.*  (UNet, ldm keys)
                              structcond_stage_model.* (structure encoder)
                              empty_prompt_context     [1, L, context_dim] (CONTEXT_KEY)
                              metadata: vsr_core.kind, vsr_core.unet_config,
                              vsr_core.struct_encoder_config, vsr_core.latent_scale
  tiny_vae.safetensors        encoder.* / decoder.* / quant_conv / post_quant_conv
  tiny_video_vae.safetensors  the same plus decoder.fusion_layer_* and *temporal_mixing*
                              (MGLD's video-VAE key layout), metadata vsr_core.latent_scale

``load_components(path, ("unet", "context"))`` returns the context tensor next to
the UNet, whose ``latent_scale`` attribute holds the metadata value. Each file has a
JSON model card next to it (``name.json``).
"""
from __future__ import annotations

import json

import torch

from ..errors import InputError
from .formats import CONTEXT_KEY, LATENT_SCALE_META, META_KIND, PREFIXES
from .io import write_safetensors


def _meta(kind: str, latent_scale: float | None, extra: dict | None) -> dict:
    meta = {"vsr_core.format": "1", META_KIND: kind}
    if latent_scale is not None:
        meta[LATENT_SCALE_META] = repr(float(latent_scale))
    meta.update({k: (v if isinstance(v, str) else json.dumps(v)) for k, v in (extra or {}).items()})
    return meta


def save_diffusion_bundle(model, path: str, context: torch.Tensor | None, latent_scale: float,
                          metadata: dict | None = None) -> None:
    """A StructCondUNet (or UNetModel) + empty-prompt context + latent scale -> one safetensors file."""
    from ..models.sft import StructCondUNet
    from ..models.unet import UNetModel
    if isinstance(model, StructCondUNet):
        unet, enc = model.unet, model.struct_encoder
    elif isinstance(model, UNetModel):
        unet, enc = model, None
    else:
        raise InputError(f"model: expected a StructCondUNet or UNetModel, got {type(model).__name__}")
    sd = {PREFIXES["unet"] + k: v.detach().float().contiguous() for k, v in unet.state_dict().items()}
    extra = {"vsr_core.unet_config": unet.config.to_dict()}
    if enc is not None:
        sd.update({PREFIXES["struct_encoder"] + k: v.detach().float().contiguous()
                   for k, v in enc.state_dict().items()})
        extra["vsr_core.struct_encoder_config"] = enc.config.to_dict()
    if context is not None:
        if context.dim() != 3 or context.shape[0] != 1 or context.shape[-1] != unet.config.context_dim:
            raise InputError(f"context: expected [1, L, {unet.config.context_dim}], got {list(context.shape)}")
        sd[CONTEXT_KEY] = context.detach().float().contiguous()
    extra.update(metadata or {})
    write_safetensors(sd, path, _meta("struct_cond_unet" if enc is not None else "unet", latent_scale, extra))


def save_vae_bundle(vae, path: str, latent_scale: float | None, metadata: dict | None = None) -> None:
    """An AutoencoderKL / CFW / video VAE with bare ldm keys (what load_model(kind='vae') detects)."""
    sd = {k: v.detach().float().contiguous() for k, v in vae.state_dict().items()}
    write_safetensors(sd, path, _meta("vae", latent_scale, metadata))
