"""StableSR's time-aware structure encoder (EncoderUNetModelWT) and the SFT UNet wrapper.

The encoder is the first half of an ldm UNet on the LR latent, with plain
ResBlocks and legacy-order AttentionBlocks. It returns, keyed by width, the
feature just before each downsample plus the middle-block output, each passed
through a `fea_tran` ResBlock to `out_channels` (methods.md 2.1). MGLD's
InflatedEncoderUNetModelWT has the same keys (its temporal layers are
commented out), so this class loads both.

`StructCondUNet` pairs it with an SFT UNet: the module the loader returns for
StableSR / MGLD checkpoints.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn as nn

from ..errors import InputError
from .attention import AttentionBlock
from .resblock import Downsample, ResBlock
from .spade import SPADE
from .timestep import timestep_embedding

__all__ = ["SPADE", "StructEncoderConfig", "EncoderUNetModelWT", "StructCondUNet"]


@dataclass
class StructEncoderConfig:
    """Defaults are StableSR's structcond_stage_config (also MGLD's)."""

    in_channels: int = 4
    model_channels: int = 256
    out_channels: int = 256
    channel_mult: tuple[int, ...] = (1, 1, 2, 2)
    num_res_blocks: int = 2
    attention_resolutions: tuple[int, ...] = (4, 2, 1)
    num_heads: int = 4
    num_head_channels: int = -1
    dropout: float = 0.0

    def __post_init__(self):
        self.channel_mult = tuple(int(m) for m in self.channel_mult)
        self.attention_resolutions = tuple(sorted((int(a) for a in self.attention_resolutions), reverse=True))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "StructEncoderConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise InputError(f"StructEncoderConfig: unknown fields {sorted(unknown)}")
        return cls(**d)


class EncoderUNetModelWT(nn.Module):
    """forward(x, timesteps) -> {str(width): [N, out_channels, h, w]}."""

    def __init__(self, config: StructEncoderConfig | None = None, **kw):
        super().__init__()
        cfg = config if config is not None else StructEncoderConfig(**kw)
        self.config = cfg
        mc = cfg.model_channels
        emb_dim = mc * 4

        def attn(ch):
            return AttentionBlock(ch, cfg.num_heads, cfg.num_head_channels, legacy_order=True)

        self.time_embed = nn.Sequential(nn.Linear(mc, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.input_blocks = nn.ModuleList([nn.Sequential(nn.Conv2d(cfg.in_channels, mc, 3, padding=1))])
        tran_chans = []
        ch, ds = mc, 1
        for level, mult in enumerate(cfg.channel_mult):
            for _ in range(cfg.num_res_blocks):
                layers = [ResBlock(ch, emb_dim, mult * mc, cfg.dropout)]
                ch = mult * mc
                if ds in cfg.attention_resolutions:
                    layers.append(attn(ch))
                self.input_blocks.append(nn.Sequential(*layers))
            if level != len(cfg.channel_mult) - 1:
                self.input_blocks.append(nn.Sequential(Downsample(ch)))
                tran_chans.append(ch)
                ds *= 2
        self.middle_block = nn.Sequential(ResBlock(ch, emb_dim, None, cfg.dropout), attn(ch),
                                          ResBlock(ch, emb_dim, None, cfg.dropout))
        tran_chans.append(ch)
        self.fea_tran = nn.ModuleList(ResBlock(c, emb_dim, cfg.out_channels, cfg.dropout)
                                      for c in tran_chans)

    @property
    def dtype(self) -> torch.dtype:
        return self.time_embed[0].weight.dtype

    @staticmethod
    def _run(seq: nn.Sequential, h, emb):
        for layer in seq:
            h = layer(h, emb) if isinstance(layer, ResBlock) else layer(h)
        return h

    def forward(self, x: torch.Tensor, timesteps) -> dict[str, torch.Tensor]:
        cfg = self.config
        if x.dim() != 4 or x.shape[1] != cfg.in_channels:
            raise InputError(f"structure encoder input: expected an LR latent "
                             f"[N, {cfg.in_channels}, H, W], got {list(x.shape)}")
        timesteps = torch.as_tensor(timesteps, device=x.device)
        if timesteps.dim() == 0 or timesteps.numel() == 1:
            timesteps = timesteps.reshape(1).expand(x.shape[0])
        emb = self.time_embed(timestep_embedding(timesteps, cfg.model_channels).to(self.dtype))
        h = x.to(self.dtype)
        feats = []
        for block in self.input_blocks:
            last = h
            h = self._run(block, h, emb)
            if h.shape[-1] != last.shape[-1]:
                feats.append(last)
        feats.append(self._run(self.middle_block, h, emb))
        return {str(f.shape[-1]): tran(f, emb) for f, tran in zip(feats, self.fea_tran)}


class StructCondUNet(nn.Module):
    """An SFT UNet plus its structure encoder (StableSR / MGLD checkpoints).

    Attributes `unet` (UNetModel with sft=True) and `struct_encoder`
    (EncoderUNetModelWT). State-dict keys are `unet.*` and `struct_encoder.*`;
    the loader maps them from/to ldm's `model.diffusion_model.*` and
    `structcond_stage_model.*`.

    forward(x, timesteps, context, lr_latent, struct_timesteps=None, ...):
    the structure features are computed from `lr_latent` at
    `struct_timesteps` (StableSR/MGLD pass the original, un-respaced t; it
    defaults to `timesteps`), unless `struct_cond` is given precomputed.
    """

    def __init__(self, unet: nn.Module, struct_encoder: EncoderUNetModelWT):
        super().__init__()
        if not unet.config.sft:
            raise InputError("StructCondUNet: the UNet has no SFT layers (config.sft is False)")
        if unet.config.sft_channels != struct_encoder.config.out_channels:
            raise InputError(
                f"StructCondUNet: the UNet's SFT layers take {unet.config.sft_channels} channels "
                f"but the structure encoder gives {struct_encoder.config.out_channels}")
        self.unet = unet
        self.struct_encoder = struct_encoder

    @property
    def config(self):
        return self.unet.config

    @property
    def dtype(self) -> torch.dtype:
        return self.unet.dtype

    def forward(self, x, timesteps, context=None, lr_latent=None, struct_timesteps=None,
                num_frames=None, struct_cond=None, **kwargs):
        if struct_cond is None:
            if lr_latent is None:
                raise InputError("lr_latent: required by the structure encoder (the LR latent, "
                                 "same size as x) unless struct_cond is given")
            t = timesteps if struct_timesteps is None else struct_timesteps
            struct_cond = self.struct_encoder(lr_latent, t)
        return self.unet(x, timesteps, context, struct_cond=struct_cond, lr_latent=lr_latent,
                         num_frames=num_frames)
