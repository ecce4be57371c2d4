"""load_model: read a checkpoint, detect its format, build and load the module.

Modules are built on the meta device and filled with
load_state_dict(assign=True), so the tensors read from the file become the
parameters: memory is never doubled. Every key and shape is compared before
loading; any difference is a CheckpointError that lists missing, unexpected
and mismatched keys.

Return types:
  kind="unet"   UNetModel, or StructCondUNet (.unet + .struct_encoder) when the
                file also holds StableSR/MGLD's structure encoder
  kind="vae"    the VAE module from checkpoints.vae_format.build_vae_from_state_dict
  kind="text"   the module from vsr_core.models.text_encoder.build_text_encoder_from_state_dict
  kind="struct_encoder"  EncoderUNetModelWT alone
  kind="auto"   the first of unet, struct_encoder, vae, text the file holds
  kind="context" the stored empty-prompt context tensor [1,L,D] of the pack's
                diffusion bundles (checkpoints/bundle.py), not a module
A file with `vsr_core.latent_scale` metadata gives its unet / vae a
`latent_scale` attribute (the scale the pack's own UNet was trained with).
"""
from __future__ import annotations

import json
import os

import torch
import torch.nn as nn

from ..errors import CheckpointError, InputError
from ..models.sfa_tfa import LRConditionEncoder
from ..models.state_dict import check_state_dict
from ..models.sft import EncoderUNetModelWT, StructCondUNet, StructEncoderConfig
from ..models.temporal import SpatialTemporalConv, TemporalAttention
from ..models.unet import SATeCoBlock, UNetConfig, UNetModel, count_parameters, sd_to_mgld_state_dict
from .formats import CONTEXT_KEY, LATENT_SCALE_META, META_KIND, PREFIXES, CheckpointContents, \
    infer_struct_encoder_config, infer_unet_config, split_components
from .io import read_checkpoint, write_safetensors

__all__ = ["load_model", "load_checkpoint_contents", "build_unet", "build_struct_encoder",
           "check_state_dict", "save_model", "load_components", "KINDS", "DTYPES"]

KINDS = ("auto", "unet", "vae", "text", "struct_encoder", "context")
DTYPES = {"fp32": torch.float32, "float32": torch.float32, "fp16": torch.float16,
          "float16": torch.float16, "half": torch.float16, "bf16": torch.bfloat16,
          "bfloat16": torch.bfloat16}


def _dtype(dtype) -> torch.dtype | None:
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    if isinstance(dtype, str) and dtype.lower() in DTYPES:
        return DTYPES[dtype.lower()]
    raise InputError(f"dtype: expected None, a torch floating dtype or one of "
                     f"{sorted(DTYPES)}, got {dtype!r}")


def _fresh_new_modules(module: nn.Module) -> None:
    """Materialise layers still on meta (new temporal / SATeCo layers) with identity init."""
    for m in module.modules():
        if isinstance(m, (SpatialTemporalConv, TemporalAttention, SATeCoBlock, LRConditionEncoder)):
            params = list(m.parameters())
            if params and all(p.is_meta for p in params):
                m.to_empty(device="cpu")
                m.reset_parameters()


def _load_into(module: nn.Module, sd: dict, what: str, dtype, allow_missing=()) -> nn.Module:
    check_state_dict(module, sd, what, allow_missing)
    if dtype is not None:
        sd = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in sd.items()}
    module.load_state_dict(sd, strict=not allow_missing, assign=True)
    if allow_missing:
        _fresh_new_modules(module)
        if dtype is not None:
            module.to(dtype)
    leftover = [n for n, p in module.named_parameters() if p.is_meta]
    if leftover:
        raise CheckpointError(f"{what}: parameters not in the file: {leftover[:20]}")
    return module.eval().requires_grad_(False)


def build_unet(sd: dict, dtype=None, config: UNetConfig | None = None, what="UNet",
               **overrides) -> UNetModel:
    """Build a UNetModel on meta from an ldm UNet state dict (prefix stripped) and load it.

    overrides: UNetConfig fields. Asking for `temporal_middle=True` or
    `sfa_tfa=True` on weights without those layers remaps the middle block
    (sd_to_mgld_state_dict) and starts the new layers as exact identities:
    the way to initialise MGLD / SATeCo training from SD 2.1 or StableSR.
    """
    dtype = _dtype(dtype)
    inferred = infer_unet_config(sd)
    cfg = config or infer_unet_config(sd, **overrides)
    allow = []
    if cfg.temporal_middle and not inferred.temporal_middle:
        sd = sd_to_mgld_state_dict(sd)
        allow += ["middle_block.1.", "middle_block.3.", "middle_block.5."]
    if cfg.sfa_tfa and not inferred.sfa_tfa:
        allow += ["sateco_blocks.", "sateco_cond."]
    with torch.device("meta"):
        unet = UNetModel(cfg)
    return _load_into(unet, sd, what, dtype, allow)


def build_struct_encoder(sd: dict, dtype=None, config: StructEncoderConfig | None = None,
                         what="structure encoder", **overrides) -> EncoderUNetModelWT:
    dtype = _dtype(dtype)
    cfg = config or infer_struct_encoder_config(sd, **overrides)
    with torch.device("meta"):
        enc = EncoderUNetModelWT(cfg)
    return _load_into(enc, sd, what, dtype)


def load_checkpoint_contents(path) -> CheckpointContents:
    sd, meta = read_checkpoint(path)
    try:
        return split_components(sd, meta)
    except CheckpointError as e:
        raise CheckpointError(f"{os.fspath(path)}: {e}") from None


def _build_vae(sd: dict, dtype, what: str) -> nn.Module:
    from .vae_format import build_vae_from_state_dict, clean_vae_state_dict
    sd = clean_vae_state_dict(sd)
    module = build_vae_from_state_dict(sd)
    if any(p.is_meta for p in module.parameters()):
        return _load_into(module, sd, what, dtype)
    return module.eval().requires_grad_(False).to(dtype) if dtype else module.eval().requires_grad_(False)


def _build_text(sd: dict, dtype, what: str) -> nn.Module:
    try:
        from ..models import text_encoder as te
    except ImportError as e:
        raise CheckpointError(f"{what}: the text encoder module is not available ({e})") from None
    # Hand over the keys as they sit in an ldm file; the builder strips its own prefix.
    sd = {PREFIXES["text"] + k: v for k, v in sd.items()}
    clean = getattr(te, "clean_text_encoder_state_dict", None)
    if clean:
        sd = clean(sd)
    module = te.build_text_encoder_from_state_dict(sd)
    if any(p.is_meta for p in module.parameters()):
        return _load_into(module, sd, what, dtype)
    module = module.eval().requires_grad_(False)
    return module.to(dtype) if dtype else module


def load_model(path, kind: str = "auto", dtype=None, device="cpu", overrides: dict | None = None):
    """Load one model from a checkpoint file.

    path: .safetensors, or .ckpt/.pth/.pt/.bin (read with weights_only=True).
    kind: 'unet' | 'vae' | 'text' | 'struct_encoder' | 'auto'.
    dtype: None (as stored), torch.float16/bfloat16/float32 or 'fp16'/'bf16'/'fp32'.
    device: where the returned module lives (built and loaded on CPU first).
    overrides: UNetConfig fields the weights cannot tell (e.g. {'prediction': 'v'}
        for SD 2.x 768-v, {'num_head_channels': 64}) or new layers to add
        ({'temporal_middle': True} / {'sfa_tfa': True}, starting as identities).
    """
    if kind not in KINDS:
        raise InputError(f"kind: expected one of {KINDS}, got {kind!r}")
    path = os.fspath(path)
    c = load_checkpoint_contents(path)
    if kind == "auto":
        kind = next((k for k in ("unet", "struct_encoder", "vae", "text") if k in c.components), None)
    return _build_component(c, path, kind, _dtype(dtype), overrides).to(device)


def load_components(path, kinds=("unet", "vae", "text"), dtype=None, device="cpu",
                    overrides: dict | None = None) -> dict[str, nn.Module]:
    """Every requested model a file holds, reading the file once: {kind: module}.

    Kinds the file does not hold are left out (a full StableSR/MGLD/SD file
    holds unet, vae and text; a VAE file only vae).
    """
    path = os.fspath(path)
    c = load_checkpoint_contents(path)
    return {kind: _build_component(c, path, kind, _dtype(dtype), overrides).to(device)
            for kind in kinds if kind in c.components}


def _build_component(c: CheckpointContents, path: str, kind: str | None, dtype, overrides: dict | None):
    comps = c.components
    if kind not in comps:
        raise CheckpointError(
            f"{path}: holds no {kind or 'model'} (format {c.format!r}; found: "
            f"{', '.join(sorted(comps)) or 'nothing usable'}). Expected keys under "
            f"{PREFIXES.get(kind, '')!r} or a bare {kind} state dict.")
    what = f"{path} [{kind}]"
    overrides = dict(overrides or {})
    if kind == "context":
        ctx = comps["context"][CONTEXT_KEY]
        return ctx.to(dtype) if dtype is not None else ctx
    model = _build_module(c, path, kind, dtype, overrides, what)
    scale = c.metadata.get(LATENT_SCALE_META)
    if scale is not None and kind in ("unet", "vae"):
        try:
            model.latent_scale = float(scale)
        except ValueError:
            raise CheckpointError(f"{path}: metadata {LATENT_SCALE_META}={scale!r} is not a number") from None
    return model


def _build_module(c: CheckpointContents, path: str, kind: str, dtype, overrides: dict, what: str):
    comps = c.components
    if kind == "unet":
        saved = c.meta_json("vsr_core.unet_config")
        cfg = None
        if saved is not None:
            saved.update(overrides)
            cfg = UNetConfig.from_dict(saved)
        model = build_unet(comps["unet"], dtype, cfg, what, **({} if cfg else overrides))
        if "struct_encoder" in comps and model.config.sft:
            saved_enc = c.meta_json("vsr_core.struct_encoder_config")
            enc = build_struct_encoder(
                comps["struct_encoder"], dtype,
                StructEncoderConfig.from_dict(saved_enc) if saved_enc else None,
                f"{path} [struct_encoder]")
            model = StructCondUNet(model, enc)
        return model
    if kind == "struct_encoder":
        saved_enc = c.meta_json("vsr_core.struct_encoder_config")
        return build_struct_encoder(comps["struct_encoder"], dtype,
                                    StructEncoderConfig.from_dict(saved_enc) if saved_enc else None,
                                    what, **overrides)
    if kind == "vae":
        return _build_vae(comps["vae"], dtype, what)
    return _build_text(comps["text"], dtype, what)


def save_model(model: nn.Module, path, metadata: dict | None = None) -> None:
    """Save a UNetModel / StructCondUNet / EncoderUNetModelWT as the pack's safetensors.

    Keys use ldm's prefixes (model.diffusion_model., structcond_stage_model.),
    so other ldm tools read the file too; the configs go into the metadata,
    so fields the weights cannot tell (heads, prediction, TFA window) survive.
    """
    meta = {"vsr_core.format": "1"}
    if isinstance(model, StructCondUNet):
        sd = {PREFIXES["unet"] + k: v for k, v in model.unet.state_dict().items()}
        sd.update({PREFIXES["struct_encoder"] + k: v for k, v in model.struct_encoder.state_dict().items()})
        meta.update({META_KIND: "struct_cond_unet",
                     "vsr_core.unet_config": json.dumps(model.unet.config.to_dict()),
                     "vsr_core.struct_encoder_config": json.dumps(model.struct_encoder.config.to_dict())})
    elif isinstance(model, UNetModel):
        sd = {PREFIXES["unet"] + k: v for k, v in model.state_dict().items()}
        meta.update({META_KIND: "unet", "vsr_core.unet_config": json.dumps(model.config.to_dict())})
    elif isinstance(model, EncoderUNetModelWT):
        sd = {PREFIXES["struct_encoder"] + k: v for k, v in model.state_dict().items()}
        meta.update({META_KIND: "struct_encoder",
                     "vsr_core.struct_encoder_config": json.dumps(model.config.to_dict())})
    else:
        raise InputError(f"model: expected a UNetModel, StructCondUNet or EncoderUNetModelWT, "
                         f"got {type(model).__name__}")
    meta.update({k: (v if isinstance(v, str) else json.dumps(v)) for k, v in (metadata or {}).items()})
    write_safetensors(sd, path, meta)


def parameter_summary(module: nn.Module) -> dict:
    dtypes = sorted({str(p.dtype).replace("torch.", "") for p in module.parameters()})
    return {"parameters": count_parameters(module), "dtypes": dtypes}
