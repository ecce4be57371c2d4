"""VAE checkpoints: which variant a state dict holds, its config, and building the right module.

Variants: ldm AutoencoderKL (SD 2.x), StableSR's CFW VAE (fusion layers in the
decoder) and MGLD-VSR's temporal CFW VAE; `detect_vae_format` tells them apart
by key names, `infer_vae_config` reads widths and depths from shapes, and
`build_vae_from_state_dict` / `load_vae_state_dict` make the matching module
(vsr_core.models.vae, .cfw, .video_vae). Checkpoint knowledge lives here so
the network modules do not import each other.
"""
from __future__ import annotations

import re
from typing import Iterable, Mapping

import torch
import torch.nn as nn

from ..errors import CheckpointError, InputError
from ..models.cfw import CFWAutoencoderKL, infer_fusion
from ..models.state_dict import check_state_dict
from ..models.vae import AutoencoderKL, VAEConfig
from ..models.video_vae import VideoAutoencoderKL, infer_video_options

#: Formats `detect_vae_format` can return.
VAE_FORMATS = ("autoencoder_kl", "stablesr_cfw", "mgld_video_cfw")

#: Key prefixes found in VAE training checkpoints that are not part of the
#: network (the LPIPS/discriminator loss of StableSR's and MGLD's CFW
#: checkpoints). `clean_vae_state_dict` drops them.
VAE_IGNORED_PREFIXES = ("loss.", "model_ema.")

_PREFIX = "first_stage_model."


def clean_vae_state_dict(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Strip a `first_stage_model.` prefix if every VAE key carries it, and drop
    training-only entries (`VAE_IGNORED_PREFIXES`). Tensors are not copied."""
    keys = list(sd.keys())
    if any(k.startswith(_PREFIX) for k in keys):
        sd = {k[len(_PREFIX):]: v for k, v in sd.items() if k.startswith(_PREFIX)}
    return {k: v for k, v in sd.items() if not k.startswith(VAE_IGNORED_PREFIXES)}


def _has(keys: set[str], *needles: str) -> bool:
    return any(n in keys for n in needles)


def detect_vae_format(keys: Iterable[str]) -> str | None:
    """Which VAE layout a key set (prefix `first_stage_model.` already
    stripped) holds, or None if it is not an ldm AutoencoderKL.

    - 'autoencoder_kl': the plain SD VAE (SD 1.x/2.x, StableSR/MGLD LDM ckpts).
    - 'stablesr_cfw': StableSR's CFW VAE (`decoder.fusion_layer_*` with RRDB
      blocks, `encode_enc_2.{n}.rdb{1,2,3}.conv{1-5}`).
    - 'mgld_video_cfw': the video decoder family: MGLD's temporal CFW VAE
      (`decoder.temporal_mixing.*`, RDB fusion `encode_enc_2.{n}.conv{1-5}`),
      and any of our decoders with temporal or SATeCo SFA/TFA layers.
    """
    keys = {k[len(_PREFIX):] if k.startswith(_PREFIX) else k for k in keys}
    keys = {k for k in keys if not k.startswith(VAE_IGNORED_PREFIXES)}
    trunk = any(k.startswith(("encoder.down.", "decoder.up.")) for k in keys)
    anchor = _has(keys, "encoder.conv_in.weight", "decoder.conv_in.weight",
                  "quant_conv.weight", "post_quant_conv.weight")
    if not (trunk and anchor):
        return None
    video = any(k.startswith("decoder.temporal_mixing.") or ".temporal_mixing." in k
                or re.match(r"decoder\.up\.\d+\.(sfa|tfa)\.", k) for k in keys)
    if video:
        return "mgld_video_cfw"
    if any(k.startswith("decoder.fusion_layer_") for k in keys):
        if any(re.match(r"decoder\.fusion_layer_\d+\.encode_enc_2\.\d+\.conv\d\.", k) for k in keys):
            # RDB fusion without temporal layers: MGLD's fusion, treat as its family
            return "mgld_video_cfw"
        return "stablesr_cfw"
    return "autoencoder_kl"


def _shape(sd: Mapping[str, torch.Tensor], *keys: str):
    for k in keys:
        if k in sd:
            return tuple(sd[k].shape)
    return None


def _indices(keys: Iterable[str], pattern: str) -> dict[int, set[int]]:
    """For a regex with groups (a, b) over keys: {a: {b, ...}}."""
    out: dict[int, set[int]] = {}
    rx = re.compile(pattern)
    for k in keys:
        m = rx.match(k)
        if m:
            a = int(m.group(1))
            out.setdefault(a, set())
            if m.lastindex and m.lastindex >= 2:
                out[a].add(int(m.group(2)))
    return out


def infer_vae_config(sd: Mapping[str, torch.Tensor]) -> VAEConfig:
    """Infer VAEConfig from key names and shapes (works at any width).

    Each number is read from whichever of several keys is present, so a state
    dict with a few keys missing still gives the intended config and the
    checked load can then name exactly what is missing.
    """
    keys = list(sd.keys())
    enc_levels = _indices(keys, r"encoder\.down\.(\d+)\.block\.(\d+)\.")
    dec_levels = _indices(keys, r"decoder\.up\.(\d+)\.block\.(\d+)\.")
    if not enc_levels and not dec_levels:
        raise CheckpointError(
            "VAE state dict: found no 'encoder.down.{i}.block.{j}.*' or "
            "'decoder.up.{i}.block.{j}.*' keys; expected an ldm AutoencoderKL "
            "(keys like encoder.conv_in.weight, decoder.up.0.block.0.conv1.weight)")
    num_levels = max(list(enc_levels) + list(dec_levels)) + 1
    nrb = [max(v) + 1 for v in enc_levels.values() if v] + [max(v) for v in dec_levels.values() if v]
    num_res_blocks = max(nrb) if nrb else 1
    if num_res_blocks < 1:
        num_res_blocks = 1

    s = _shape(sd, "encoder.conv_in.weight")
    if s is not None:
        ch, in_channels = s[0], s[1]
    else:
        s = _shape(sd, "decoder.conv_out.weight")
        if s is None:
            raise CheckpointError("VAE state dict: missing both 'encoder.conv_in.weight' and "
                                  "'decoder.conv_out.weight'; cannot tell the base width")
        ch, in_channels = s[1], 3
    s = _shape(sd, "decoder.conv_out.weight")
    out_ch = s[0] if s is not None else 3

    ch_mult = []
    for i in range(num_levels):
        s = _shape(sd, f"encoder.down.{i}.block.0.conv1.weight", f"encoder.down.{i}.block.1.conv1.weight",
                   f"decoder.up.{i}.block.1.conv1.weight", f"decoder.up.{i}.block.0.conv1.weight")
        if s is None:
            raise CheckpointError(f"VAE state dict: no conv1 weight for level {i} "
                                  f"(encoder.down.{i}.block.0.conv1.weight or "
                                  f"decoder.up.{i}.block.0.conv1.weight); cannot tell its width")
        if s[0] % ch:
            raise CheckpointError(f"VAE state dict: level {i} width {s[0]} is not a multiple "
                                  f"of the base width {ch}")
        ch_mult.append(s[0] // ch)

    s = _shape(sd, "decoder.conv_in.weight")
    if s is not None:
        z_channels = s[1]
    else:
        s = _shape(sd, "post_quant_conv.weight", "encoder.conv_out.weight")
        if s is None:
            raise CheckpointError("VAE state dict: missing decoder.conv_in.weight, "
                                  "post_quant_conv.weight and encoder.conv_out.weight; "
                                  "cannot tell z_channels")
        z_channels = s[0] if "post_quant_conv.weight" in sd else s[0] // 2
    s = _shape(sd, "post_quant_conv.weight")
    if s is not None:
        embed_dim = s[1]
    else:
        s = _shape(sd, "quant_conv.weight")
        embed_dim = s[0] // 2 if s is not None else z_channels

    attn_levels = sorted(set(_indices(keys, r"encoder\.down\.(\d+)\.attn\.(\d+)\."))
                         | set(_indices(keys, r"decoder\.up\.(\d+)\.attn\.(\d+)\.")))
    try:
        return VAEConfig(ch=ch, ch_mult=tuple(ch_mult), num_res_blocks=num_res_blocks,
                         z_channels=z_channels, embed_dim=embed_dim, in_channels=in_channels,
                         out_ch=out_ch, attn_levels=tuple(attn_levels))
    except InputError as e:
        raise CheckpointError(f"VAE state dict: inferred an invalid config ({e})") from None


def build_vae_from_state_dict(sd: Mapping[str, torch.Tensor], device="meta") -> nn.Module:
    """Build (NOT load) the VAE module matching a state dict.

    `sd` has the `first_stage_model.` prefix already stripped (a prefixed dict
    is accepted too). The variant comes from `detect_vae_format`, the shapes
    from `infer_vae_config`; the module is created on `device` (default
    'meta': no memory). Load it with `module.load_state_dict(sd, strict=True,
    assign=True)` after `clean_vae_state_dict`, or use `load_vae_state_dict`
    which does that with a checked, clearly-reported key comparison.
    """
    sd = clean_vae_state_dict(sd)
    fmt = detect_vae_format(sd.keys())
    if fmt is None:
        some = ", ".join(sorted(sd)[:5]) or "(empty)"
        raise CheckpointError(
            "VAE state dict: not an ldm AutoencoderKL (expected keys such as "
            f"encoder.conv_in.weight, decoder.conv_out.weight, quant_conv.weight); got {some} ...")
    cfg = infer_vae_config(sd)
    with torch.device(device):
        if fmt == "autoencoder_kl":
            return AutoencoderKL(cfg)
        if fmt == "stablesr_cfw":
            return CFWAutoencoderKL(cfg, **infer_fusion(sd))
        return VideoAutoencoderKL(cfg, **infer_video_options(sd))


def load_vae_state_dict(sd: Mapping[str, torch.Tensor], *, dtype: torch.dtype | None = None,
                        what: str = "VAE checkpoint") -> nn.Module:
    """Detect, build on meta, check and load (assign=True: no copy, so memory
    is not doubled). Returns the module in eval mode on the tensors' device."""
    sd = clean_vae_state_dict(sd)
    module = build_vae_from_state_dict(sd, device="meta")
    check_state_dict(module, sd, what=what)
    if dtype is not None:
        sd = {k: v.to(dtype) for k, v in sd.items()}
    module.load_state_dict(sd, strict=True, assign=True)
    return module.eval().requires_grad_(False)
