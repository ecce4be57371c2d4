"""Checkpoint format detection from key names, and config inference from shapes.

Formats (methods.md 5):
  sd            ldm SD 1.x/2.x checkpoint (`model.diffusion_model.*`, usually
                with `first_stage_model.*` and `cond_stage_model.*`)
  stablesr      StableSR LDM: SFT UNet (`spade` keys) + `structcond_stage_model.*`
  mgld          MGLD-VSR LDM: as stablesr with the temporal middle block
                (`middle_block.1.temporal_conv`), often `flownet_model.*`
  vsr_core      the pack's own safetensors (metadata `vsr_core.kind`, or
                SATeCo `sateco_*` keys)
  unet / struct_encoder / vae / text
                a bare component saved without its ldm prefix
  vae formats   stablesr_cfw, mgld_video_cfw, autoencoder_kl (from
                vsr_core.checkpoints.vae_format.detect_vae_format)

Nothing here builds modules; see loader.py.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import torch

from ..errors import CheckpointError
from ..models.sft import StructEncoderConfig
from ..models.unet import UNetConfig

__all__ = ["PREFIXES", "IGNORED_PREFIXES", "CONTEXT_KEY", "LATENT_SCALE_META", "CheckpointContents",
           "split_components", "infer_unet_config", "infer_struct_encoder_config"]

# Component -> ldm prefix inside an LDM checkpoint.
PREFIXES = {
    "unet": "model.diffusion_model.",
    "struct_encoder": "structcond_stage_model.",
    "vae": "first_stage_model.",
    "text": "cond_stage_model.",
    "flownet": "flownet_model.",
}
# Other spellings of the same components (ComfyUI's model.state_dict(), exports).
ALT_PREFIXES = {"diffusion_model.": "unet", "vae.": "vae"}
# Training-only state found in LDM/VAE checkpoints; never needed for inference.
IGNORED_PREFIXES = ("model_ema.", "loss.", "discriminator.", "lpips.", "perceptual_loss.")
# DDPM schedule buffers the LDM wrapper registers at the top level.
SCHEDULE_KEYS = {"betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod",
                 "sqrt_one_minus_alphas_cumprod", "log_one_minus_alphas_cumprod",
                 "sqrt_recip_alphas_cumprod", "sqrt_recipm1_alphas_cumprod",
                 "posterior_variance", "posterior_log_variance_clipped",
                 "posterior_mean_coef1", "posterior_mean_coef2", "logvar",
                 "lvlb_weights", "scale_factor", "shift_factor", "model_ema.decay",
                 "model_ema.num_updates", "ddim_sigmas", "ddim_alphas",
                 "ddim_alphas_prev", "ddim_sqrt_one_minus_alphas", "alphas_cumprod_original"}
META_KIND = "vsr_core.kind"
# The pack's diffusion bundles (checkpoints/bundle.py): a stored empty-prompt
# context (component "context") and the latent scale the UNet was trained with.
CONTEXT_KEY = "empty_prompt_context"
LATENT_SCALE_META = "vsr_core.latent_scale"


@dataclass
class CheckpointContents:
    """What a checkpoint holds: component state dicts (prefix stripped) and the rest."""

    format: str
    components: dict[str, dict[str, torch.Tensor]]
    ignored: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)

    def meta_json(self, key: str) -> dict | None:
        raw = self.metadata.get(key)
        if raw is None:
            return None
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            raise CheckpointError(f"checkpoint metadata {key!r}: not valid JSON") from None


def _strip_module(sd: dict) -> dict:
    """nn.DataParallel / DDP save every key with `module.`; drop it when all keys have it."""
    if sd and all(k.startswith("module.") for k in sd):
        return {k[len("module."):]: v for k, v in sd.items()}
    return sd


def _is_unet(keys) -> bool:
    return "input_blocks.0.0.weight" in keys and any(k.startswith("output_blocks.") for k in keys)


def _is_struct_encoder(keys) -> bool:
    return "input_blocks.0.0.weight" in keys and any(k.startswith("fea_tran.") for k in keys)


def _vae_format(keys) -> str | None:
    from .vae_format import detect_vae_format
    return detect_vae_format(keys)


def split_components(sd: dict[str, torch.Tensor], metadata: dict | None = None) -> CheckpointContents:
    """Split a raw state dict into components and name its format."""
    sd = _strip_module(sd)
    metadata = dict(metadata or {})
    keys = list(sd)
    if any(k.startswith("down_blocks.") or k.startswith("unet.down_blocks.") for k in keys):
        raise CheckpointError(
            "checkpoint: this is a diffusers-layout model (keys like down_blocks.0.resnets.*); "
            "expected the original ldm layout (model.diffusion_model.input_blocks.*), e.g. "
            "v2-1_512-ema-pruned.safetensors")

    comps: dict[str, dict] = {}
    ignored, rest = [], {}
    for k, v in sd.items():
        if k in SCHEDULE_KEYS or k.startswith(IGNORED_PREFIXES):
            ignored.append(k)
            continue
        if k == CONTEXT_KEY:
            comps.setdefault("context", {})[k] = v
            continue
        for prefix, name in [(p, n) for n, p in PREFIXES.items()] + list(ALT_PREFIXES.items()):
            if k.startswith(prefix):
                comps.setdefault(name, {})[k[len(prefix):]] = v
                break
        else:
            rest[k] = v

    # Bare components (no ldm prefix): the whole remainder is one module.
    if rest:
        rk = set(rest)
        if _is_struct_encoder(rk):
            comps.setdefault("struct_encoder", {}).update(rest)
            rest = {}
        elif _is_unet(rk):
            comps.setdefault("unet", {}).update(rest)
            rest = {}
        elif _vae_format(rk) is not None:
            comps.setdefault("vae", {}).update(rest)
            rest = {}
    # Our own bundles save the SFT pair as unet.* / struct_encoder.* too.
    for name in ("unet", "struct_encoder"):
        sub = {k[len(name) + 1:]: v for k, v in rest.items() if k.startswith(name + ".")}
        if sub:
            comps.setdefault(name, {}).update(sub)
            rest = {k: v for k, v in rest.items() if not k.startswith(name + ".")}
    unknown = sorted(rest)

    u = comps.get("unet", {})
    if META_KIND in metadata or any(k.startswith(("sateco_blocks.", "sateco_cond.")) for k in u):
        fmt = "vsr_core"
    elif u and any(k.startswith("middle_block.1.temporal_") for k in u):
        fmt = "mgld"
    elif u and any(".spade." in k for k in u):
        fmt = "stablesr"
    elif u:
        fmt = "sd"
    elif "struct_encoder" in comps:
        fmt = "struct_encoder"
    elif "vae" in comps:
        fmt = _vae_format(set(comps["vae"])) or "vae"
    elif "text" in comps:
        fmt = "text"
    else:
        some = ", ".join(keys[:8])
        raise CheckpointError(
            "checkpoint: no known model found. Expected an ldm checkpoint "
            "(model.diffusion_model.*, first_stage_model.*, structcond_stage_model.*), a bare "
            "UNet (input_blocks.*, output_blocks.*), a VAE (encoder.*, decoder.*) or a "
            f"structure encoder (input_blocks.*, fea_tran.*); the first keys are: {some}")
    return CheckpointContents(fmt, comps, sorted(ignored), unknown, metadata)


# -- config inference -----------------------------------------------------------

def _need(sd: dict, key: str, what: str) -> torch.Tensor:
    if key not in sd:
        raise CheckpointError(f"{what}: key {key!r} is missing, so the architecture cannot be "
                              f"inferred; the file may be truncated or not this kind of model")
    return sd[key]


def _walk_input_blocks(sd: dict, mc: int, what: str, attn_key: str):
    """-> channel_mult, num_res_blocks per level, attention_resolutions, first attention index."""
    mult, nres, attn_res, first_attn = [], [0], set(), None
    level, i = 0, 1
    cur = None
    while True:
        if f"input_blocks.{i}.0.op.weight" in sd:
            mult.append(cur // mc if cur else 1)
            level += 1
            nres.append(0)
            cur = None
        elif f"input_blocks.{i}.0.in_layers.0.weight" in sd:
            w = _need(sd, f"input_blocks.{i}.0.out_layers.3.weight", what)
            c = w.shape[0]
            if c % mc:
                raise CheckpointError(f"{what}: input_blocks.{i} has {c} channels, not a multiple "
                                      f"of model_channels {mc}")
            if cur is not None and c != cur:
                raise CheckpointError(f"{what}: input_blocks.{i} changes width inside level {level} "
                                      f"({cur} -> {c}); unsupported layout")
            cur = c
            nres[level] += 1
            if f"input_blocks.{i}.1.{attn_key}" in sd:
                attn_res.add(2 ** level)
                first_attn = i if first_attn is None else first_attn
        elif any(k.startswith(f"input_blocks.{i}.") for k in sd):
            raise CheckpointError(f"{what}: input_blocks.{i} is neither a ResBlock nor a "
                                  f"Downsample (op); unsupported layout (resblock_updown?)")
        else:
            break
        i += 1
    if cur is None:
        raise CheckpointError(f"{what}: the last level of input_blocks has no ResBlock")
    mult.append(cur // mc)
    if any(n == 0 for n in nres):
        raise CheckpointError(f"{what}: a level of input_blocks has no ResBlock")
    return tuple(mult), tuple(nres), tuple(sorted(attn_res, reverse=True)), first_attn


def infer_unet_config(sd: dict[str, torch.Tensor], **overrides) -> UNetConfig:
    """UNetConfig from an ldm UNet state dict (prefix stripped), at any width.

    Not recorded in the weights, so taken from convention unless overridden:
    heads (64 channels per head, SD 2.x; 8 heads for SD 1.x-style conv
    proj_in with context 768), `prediction` ('eps'), the TFA window/frames.
    """
    what = "UNet state dict"
    if "label_emb.0.weight" in sd or "label_emb.weight" in sd:
        raise CheckpointError(f"{what}: class / noise-level conditioning (label_emb) is not "
                              f"supported (SD x4 upscaler, unCLIP); expected an SD 1.x/2.x UNet")
    w0 = _need(sd, "input_blocks.0.0.weight", what)
    mc, in_ch = w0.shape[0], w0.shape[1]
    out_ch = _need(sd, "out.2.weight", what).shape[0]
    mult, nres, attn_res, first = _walk_input_blocks(sd, mc, what, "norm.weight")

    temporal = any(k.startswith("middle_block.1.temporal_conv.") for k in sd)
    mid_attn = "middle_block.2." if temporal else "middle_block.1."
    tpref = f"input_blocks.{first}.1." if first is not None else mid_attn
    context_dim, use_linear, depth = None, True, 1
    if f"{tpref}proj_in.weight" in sd:
        use_linear = sd[f"{tpref}proj_in.weight"].dim() == 2
        context_dim = _need(sd, f"{tpref}transformer_blocks.0.attn2.to_k.weight", what).shape[1]
        depth = len({m.group(1) for k in sd
                     for m in [re.match(re.escape(tpref) + r"transformer_blocks\.(\d+)\.", k)] if m})
    cfg = dict(in_channels=in_ch, out_channels=out_ch, model_channels=mc, channel_mult=mult,
               num_res_blocks=nres, attention_resolutions=attn_res, context_dim=context_dim,
               use_linear_in_transformer=use_linear, transformer_depth=depth,
               temporal_middle=temporal)
    if not use_linear and context_dim == 768:
        cfg.update(num_head_channels=-1, num_heads=8)           # SD 1.x
    spade = sd.get("input_blocks.1.0.spade.mlp_shared.0.weight")
    if spade is not None:
        cfg.update(sft=True, sft_channels=spade.shape[1], spade_hidden=spade.shape[0])
    if any(k.startswith("sateco_blocks.") for k in sd):
        cfg.update(sfa_tfa=True,
                   sfa_tfa_cond_channels=_need(sd, "sateco_cond.conv_in.weight", what).shape[0],
                   sfa_hidden=_need(sd, "sateco_blocks.0.sfa.shared.0.weight", what).shape[0])
    cfg.update(overrides)
    try:
        return UNetConfig(**cfg)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{what}: inferred an invalid config ({e})") from None


def infer_struct_encoder_config(sd: dict[str, torch.Tensor], **overrides) -> StructEncoderConfig:
    """StructEncoderConfig from a structure-encoder state dict (prefix stripped).

    num_heads is not in the weights; StableSR and MGLD use 4.
    """
    what = "structure encoder state dict"
    w0 = _need(sd, "input_blocks.0.0.weight", what)
    mc, in_ch = w0.shape[0], w0.shape[1]
    out_ch = _need(sd, "fea_tran.0.out_layers.3.weight", what).shape[0]
    mult, nres, attn_res, _ = _walk_input_blocks(sd, mc, what, "qkv.weight")
    if len(set(nres)) != 1:
        raise CheckpointError(f"{what}: levels have different ResBlock counts {nres}; unsupported")
    cfg = dict(in_channels=in_ch, model_channels=mc, out_channels=out_ch, channel_mult=mult,
               num_res_blocks=nres[0], attention_resolutions=attn_res)
    cfg.update(overrides)
    try:
        return StructEncoderConfig(**cfg)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{what}: inferred an invalid config ({e})") from None
