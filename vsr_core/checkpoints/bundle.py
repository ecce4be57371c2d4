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

import hashlib
import json
import os
import time

import torch

from ..errors import CheckpointError, InputError
from .formats import CONTEXT_KEY, LATENT_SCALE_META, META_KIND, PREFIXES
from .io import write_safetensors

WEIGHTS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "weights")
SHIPPED = {"diffusion": "tiny_unet.safetensors", "video_vae": "tiny_video_vae.safetensors",
           "vae": "tiny_vae.safetensors"}


def shipped_path(kind: str) -> str:
    """Path of a shipped tiny model ('diffusion', 'video_vae' or 'vae'); raises if it is missing."""
    if kind not in SHIPPED:
        raise InputError(f"shipped model kind={kind!r}; expected one of {', '.join(SHIPPED)}")
    path = os.path.join(WEIGHTS_DIR, SHIPPED[kind])
    if not os.path.isfile(path):
        raise InputError(f"the shipped default '{SHIPPED[kind]}' is missing from {WEIGHTS_DIR}; reinstall the "
                         f"pack or train it with `python -m vsr_core train-diffusion` (see README)")
    return path


def has_shipped(kind: str) -> bool:
    return kind in SHIPPED and os.path.isfile(os.path.join(WEIGHTS_DIR, SHIPPED[kind]))


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


# -- model cards -----------------------------------------------------------------

def file_digest(path: str) -> dict:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return {"file": os.path.basename(path), "bytes": os.path.getsize(path), "sha256": h.hexdigest()}


def card_path(weights_path: str) -> str:
    return os.path.splitext(weights_path)[0] + ".json"


def read_card(weights_path: str) -> dict:
    p = card_path(weights_path)
    if not os.path.isfile(p):
        raise CheckpointError(f"model card '{p}' is missing; expected a JSON card next to '{weights_path}'")
    with open(p) as f:
        return json.load(f)


def write_card(weights_path: str, card: dict) -> str:
    p = card_path(weights_path)
    tmp = p + ".tmp"
    with open(tmp, "w") as f:
        f.write(json.dumps(card, indent=2) + "\n")
    os.replace(tmp, p)
    return p


def update_card(weights_path: str, **sections) -> dict:
    """Merge sections (e.g. benchmark=...) into an existing card."""
    card = read_card(weights_path)
    for k, v in sections.items():
        if isinstance(v, dict) and isinstance(card.get(k), dict):
            card[k].update(v)
        else:
            card[k] = v
    write_card(weights_path, card)
    return card


# -- from a training run to a shipped file ----------------------------------------

def _run_card(run_dir: str) -> dict:
    with open(os.path.join(run_dir, "model.json")) as f:
        return json.load(f)


def _run_weights(run_dir: str) -> dict:
    from safetensors.torch import load_file
    return load_file(os.path.join(run_dir, "model.safetensors"))


def _base_card(run: dict, task: str, run_dir: str) -> dict:
    keep = ("task", "data", "steps", "batch", "loss", "optimizer", "trained_on", "date", "metrics")
    card = {k: run[k] for k in keep if k in run}
    card["degradation"] = "bi: MATLAB-style bicubic x1/4 (antialiased), 8-bit; condition = bicubic x4 upscale"
    card["training_command"] = None
    cfg_path = os.path.join(run_dir, "config.json")
    if os.path.isfile(cfg_path):
        with open(cfg_path) as f:
            c = json.load(f)
        card["training_command"] = (
            f"python -m vsr_core train-diffusion --task {task} --out {c['out']} --steps {c['steps']} "
            f"--batch {c['batch']} --frames {c['frames']} --lr-size {c['lr_size']} --lr {c['lr']} "
            f"--warmup {c['warmup']} --threads {c['threads']}"
            + (f" --vae {c['vae']}" if c.get("vae") else "")
            + (f" --model '{json.dumps(c['model'])}'" if c.get("model") else ""))
    return card


def ship_run(task: str, run_dir: str, name: str, vae: str | None = None, out_dir: str = WEIGHTS_DIR) -> str:
    """Convert a finished train-diffusion run into ``out_dir/name.safetensors`` + ``name.json``."""
    run = _run_card(run_dir)
    sd = _run_weights(run_dir)
    path = os.path.join(out_dir, name + ".safetensors")
    card = _base_card(run, task, run_dir)
    if task == "autoencoder":
        from ..models.vae import AutoencoderKL
        from ..train.autoencoder import vae_config
        model = AutoencoderKL(vae_config(run["config"]))
        model.load_state_dict(sd)
        scale = 1.0 / float(run.get("metrics", {}).get("latent_std") or 1.0)
        save_vae_bundle(model, path, scale)
        card.update(architecture="AutoencoderKL (ldm layout)", config=run["config"], latent_scale=scale,
                    degradation="none: an autoencoder of clean HR crops")
    elif task == "latent_diffusion":
        from ..train.latent_diffusion import build_tiny_unet
        cfg = run["config"]
        ov = {k: v for k, v in cfg["unet"].items()}
        ov["struct_encoder"] = cfg["struct_encoder"]
        ov["context_len"] = cfg["context_len"]
        model = build_tiny_unet(ov)
        model.load_state_dict(sd)
        scale = float(model.latent_scale)
        save_diffusion_bundle(model.model, path, model.context.data, scale)
        card.update(architecture="StructCondUNet (ldm UNet + SFT + MGLD temporal middle block + SATeCo SFA/TFA) "
                                 "+ structure encoder + learned empty-prompt context",
                    config=cfg, latent_scale=scale, prediction=cfg["unet"]["prediction"],
                    vae=os.path.basename(vae) if vae else None)
    elif task == "temporal_decoder":
        from ..checkpoints import load_model
        from ..train.temporal_decoder import build_video_vae
        if not vae:
            raise InputError("ship_run temporal_decoder: vae= the tiny VAE the decoder was trained on")
        base = load_model(vae, kind="vae").float()
        cfg = run["config"]
        model = build_video_vae(base, fusion=cfg["fusion"], num_fuse_block=cfg["num_fuse_block"],
                                num_grow_ch=cfg["num_grow_ch"])
        model.load_state_dict(sd)
        from .formats import LATENT_SCALE_META as key
        from .io import read_checkpoint
        raw = read_checkpoint(vae)[1].get(key)
        scale = float(raw) if raw is not None else None
        save_vae_bundle(model, path, scale)
        card.update(architecture="VideoAutoencoderKL (MGLD video-VAE layout: RDB CFW + temporal mixing) on the "
                                 "frozen tiny VAE", config=cfg, latent_scale=scale,
                    base_vae=os.path.basename(vae))
    else:
        raise InputError(f"task={task!r}; expected autoencoder, latent_diffusion or temporal_decoder")
    card["parameters"] = int(sum(v.numel() for v in sd.values()))
    card["weights"] = file_digest(path)
    card["shipped"] = time.strftime("%Y-%m-%d %H:%M:%S")
    write_card(path, card)
    return path
