"""From a finished train-diffusion run to a shipped file: ``name.safetensors`` (bundle layout) + ``name.json``."""
from __future__ import annotations

import json
import os
import time

from ..checkpoints.bundle import save_diffusion_bundle, save_vae_bundle
from ..checkpoints.shipped import WEIGHTS_DIR, file_digest, write_card
from ..errors import InputError


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
        from .autoencoder import vae_config
        model = AutoencoderKL(vae_config(run["config"]))
        model.load_state_dict(sd)
        scale = 1.0 / float(run.get("metrics", {}).get("latent_std") or 1.0)
        save_vae_bundle(model, path, scale)
        card.update(architecture="AutoencoderKL (ldm layout)", config=run["config"], latent_scale=scale,
                    degradation="none: an autoencoder of clean HR crops")
    elif task == "latent_diffusion":
        from .latent_diffusion import build_tiny_unet
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
        from .temporal_decoder import build_video_vae
        if not vae:
            raise InputError("ship_run temporal_decoder: vae= the tiny VAE the decoder was trained on")
        base = load_model(vae, kind="vae").float()
        cfg = run["config"]
        model = build_video_vae(base, fusion=cfg["fusion"], num_fuse_block=cfg["num_fuse_block"],
                                num_grow_ch=cfg["num_grow_ch"])
        model.load_state_dict(sd)
        from ..checkpoints.formats import LATENT_SCALE_META as key
        from ..checkpoints.io import read_checkpoint
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
