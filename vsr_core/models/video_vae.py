"""MGLD-VSR's temporal CFW VAE (`VideoAutoencoderKLResi` / `VideoDecoder_Mix`),
optionally with SATeCo's SFA/TFA in every decoder level.

Layout, key for key as MGLD (configs/video_vae/video_autoencoder_kl_64x64x4_resi.yaml):

    decoder.temporal_mixing.{temporal_conv,temporal_alpha}            after mid.block_1
    decoder.up.{l}.temporal_mixing.{b}.{temporal_conv,temporal_alpha} after every up ResnetBlock
    decoder.fusion_layer_{1,2}.encode_enc_{1,2,3}                     CFW with RDB blocks
                                                                      (encode_enc_2.{n}.conv{1..5})

`SpatialTemporalConv` (models/temporal.py) computes
alpha * Conv3d_(3,1,1)(x) + (1 - alpha) * x over the frames of each clip.
Frames are laid out [B*T, C, H, W] with the T frames of a clip contiguous;
`num_frames=T` says how to split the batch (None: the batch is one clip). MGLD
fixes T in the config (5); here it is a decode argument.

Our additions (not in any released checkpoint), enabled with sfa_tfa=True:

    decoder.up.{l}.sfa   SATeCo SFA(C_l, cond_channels)
    decoder.up.{l}.tfa   SATeCo TFA(C_l, cond_channels, window, frames)

applied at the end of every level l (after its ResnetBlocks, temporal layers
and CFW fusion, before its upsample). Their condition g is the LR latent
`lr_latent` [B*T, embed_dim, h, w] (the unscaled encoding of the upscaled LR
frames), resized bilinearly to the level's resolution. New SFA/TFA layers and
temporal layers start as exact identities, so a fresh VideoAutoencoderKL with
the weights of a plain VAE decodes bit for bit like it (tests check this).
"""
from __future__ import annotations

import re
from typing import Mapping, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import InputError
from .cfw import MGLD_FUSION_W, CFWAutoencoderKL, CFWDecoder, infer_fusion
from .sfa_tfa import SFA, TFA
from .temporal import SpatialTemporalConv, frames_of
from .vae import AutoencoderKL, VAEConfig

__all__ = ["VideoDecoder", "VideoAutoencoderKL", "infer_video_options", "video_vae_from_base"]


class VideoDecoder(CFWDecoder):
    """CFWDecoder + MGLD temporal mixing + optional SATeCo SFA/TFA."""

    def __init__(self, cfg: VAEConfig, fusion: str | None = "rdb", num_fuse_block: int = 2,
                 num_grow_ch: int = 32, temporal: bool = True, sfa_tfa: bool = False,
                 cond_channels: int | None = None, tfa_window: int = 8, tfa_frames: int = 6,
                 sfa_hidden: int = 128):
        super().__init__(cfg, fusion=fusion, num_fuse_block=num_fuse_block, num_grow_ch=num_grow_ch)
        self.temporal = bool(temporal)
        self.sfa_tfa = bool(sfa_tfa)
        self.cond_channels = int(cond_channels or cfg.embed_dim)
        if self.temporal:
            self.temporal_mixing = SpatialTemporalConv(cfg.ch * cfg.ch_mult[-1])
            for i, level in enumerate(self.up):
                c = cfg.ch * cfg.ch_mult[i]
                level.temporal_mixing = nn.ModuleList(
                    SpatialTemporalConv(c) for _ in range(cfg.num_res_blocks + 1))
        if self.sfa_tfa:
            for i, level in enumerate(self.up):
                c = cfg.ch * cfg.ch_mult[i]
                level.sfa = SFA(c, self.cond_channels, hidden=sfa_hidden)
                level.tfa = TFA(c, self.cond_channels, window=tfa_window, frames=tfa_frames)

    def _after_mid_block_1(self, h, ctx):
        if self.temporal:
            h = self.temporal_mixing(h, ctx.get("num_frames"))
        return h

    def _after_up_block(self, h, level, block, ctx):
        if self.temporal:
            h = self.up[level].temporal_mixing[block](h, ctx.get("num_frames"))
        return h

    def _end_of_level(self, h, level, ctx):
        h = super()._end_of_level(h, level, ctx)
        cond = ctx.get("lr_latent")
        if self.sfa_tfa and cond is not None:
            g = cond.to(h.dtype)
            if g.shape[-2:] != h.shape[-2:]:
                g = F.interpolate(g, size=h.shape[-2:], mode="bilinear", align_corners=False)
            t = ctx.get("num_frames")
            h = self.up[level].sfa(h, g, t)
            h = self.up[level].tfa(h, g, t)
        return h


class VideoAutoencoderKL(CFWAutoencoderKL):
    """MGLD's video VAE: SD encoder, temporal CFW decoder.

    decode(z [B*T,4,h,w], enc_features=None, w=None, num_frames=None,
    lr_latent=None): `enc_features` from `encode_with_features` of the LR
    frames (CFW; skipped if None), `w` the fusion weight (default 1.0, MGLD),
    `num_frames` T (None: one clip), `lr_latent` the SFA/TFA condition.
    """

    format_name = "mgld_video_cfw"
    decoder_class = VideoDecoder
    temporal_decoder = True

    def __init__(self, config: VAEConfig | None = None, fusion: str | None = "rdb",
                 num_fuse_block: int = 2, num_grow_ch: int = 32, temporal: bool = True,
                 sfa_tfa: bool = False, default_w: float = MGLD_FUSION_W, **decoder_options):
        super().__init__(config, fusion=fusion, num_fuse_block=num_fuse_block,
                         num_grow_ch=num_grow_ch, default_w=default_w, temporal=temporal,
                         sfa_tfa=sfa_tfa, **decoder_options)

    def decode(self, z: torch.Tensor, enc_features: Sequence[torch.Tensor] | None = None,
               w: float | None = None, num_frames: int | None = None,
               lr_latent: torch.Tensor | None = None) -> torch.Tensor:
        ctx = self._decode_ctx(z, enc_features, w)
        ctx["num_frames"] = frames_of(z, num_frames)
        if lr_latent is not None:
            if (lr_latent.ndim != 4 or lr_latent.shape[0] != z.shape[0]
                    or lr_latent.shape[1] != self.decoder.cond_channels):
                raise InputError(
                    f"lr_latent: expected [{z.shape[0]}, {self.decoder.cond_channels}, h, w] "
                    f"(one LR latent per frame of the latent batch), got {list(lr_latent.shape)}")
            ctx["lr_latent"] = lr_latent
        return self.decoder(self.post_quant_conv(z), ctx)

    def forward(self, x: torch.Tensor, w: float | None = None, num_frames: int | None = None) -> torch.Tensor:
        z, feats = self.encode_with_features(x)
        return self.decode(z, feats, w, num_frames=num_frames)


def infer_video_options(sd: Mapping[str, torch.Tensor]) -> dict:
    """VideoAutoencoderKL keyword options from a state dict's keys and shapes."""
    opts = infer_fusion(sd)
    keys = list(sd)
    opts["temporal"] = any(k.startswith("decoder.temporal_mixing.") or
                           re.match(r"decoder\.up\.\d+\.temporal_mixing\.", k) for k in keys)
    sfa = [k for k in keys if re.match(r"decoder\.up\.\d+\.(sfa|tfa)\.", k)]
    opts["sfa_tfa"] = bool(sfa)
    for k in sfa:
        m = re.match(r"decoder\.up\.\d+\.sfa\.shared\.0\.weight", k)
        if m:
            opts["sfa_hidden"], opts["cond_channels"] = int(sd[k].shape[0]), int(sd[k].shape[1])
            break
    else:
        for k in sfa:
            if k.endswith("tfa.norm_cond.weight"):
                opts["cond_channels"] = int(sd[k].shape[0])
                break
    return opts


def video_vae_from_base(base: AutoencoderKL, *, temporal: bool = True, sfa_tfa: bool = True,
                        fusion: str | None = "inherit", **options) -> VideoAutoencoderKL:
    """A VideoAutoencoderKL holding `base`'s weights (a plain or CFW VAE) plus
    new temporal / SFA / TFA layers at their identity initialisation.

    fusion='inherit' keeps the base's CFW fusion layers (none for a plain
    VAE); 'rrdb'/'rdb' adds freshly initialised ones; None drops them. The
    new module is built on `base`'s device and dtype; it is checked that only
    new layers are absent from `base.state_dict()`.
    """
    if fusion == "inherit":
        fusion = getattr(base.decoder, "fusion", None)
        if fusion:
            options.setdefault("num_fuse_block", base.decoder.num_fuse_block)
            options.setdefault("num_grow_ch", base.decoder.num_grow_ch)
    device = next(base.parameters()).device
    dtype = next(base.parameters()).dtype
    with torch.device(device):
        video = VideoAutoencoderKL(base.config, fusion=fusion, temporal=temporal,
                                   sfa_tfa=sfa_tfa, **options)
    video.to(dtype)
    missing, unexpected = video.load_state_dict(base.state_dict(), strict=False)
    new = ("temporal_mixing", ".sfa.", ".tfa.", "fusion_layer_")
    bad = [k for k in missing if not any(n in k for n in new)]
    if bad or unexpected:
        raise InputError(f"base: its weights do not fit the video VAE (missing {bad[:10]}, "
                         f"unexpected {list(unexpected)[:10]})")
    if isinstance(base, CFWAutoencoderKL):
        video.default_w = base.default_w
    return video.train(base.training)
