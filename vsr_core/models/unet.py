"""The ldm (openaimodel) UNet of SD 2.x, with StableSR SFT, MGLD temporal middle
block and SATeCo SFA/TFA as options.

State-dict layout is ldm's, so `model.diffusion_model.*` of an SD 2.1
checkpoint loads after stripping the prefix, with no renaming (methods.md 5):

    time_embed.{0,2}   input_blocks.N.{0,1}   middle_block.{0,1,2}
    output_blocks.N.{0,1,2}   out.{0,2}

Options (UNetConfig), each adding keys that never collide with ldm's:
  sft             StableSR ResBlockDual: `spade.*` inside every ResBlock; the
                  forward needs `struct_cond` (dict keyed by width).
  temporal_middle MGLD-VSR middle block [Res, TConv, Transformer, TAttn, Res,
                  TConv], so SD's middle_block.1/.2 are at .2/.4 here; use
                  `sd_to_mgld_state_dict` to start such a model from SD weights.
  sfa_tfa         SATeCo: `sateco_blocks.N.{sfa,tfa}` after every output block
                  and `sateco_cond.*` (LR latent -> condition pyramid). They
                  start as exact identities and are bypassed when the forward
                  gets no `lr_latent`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn as nn

from ..errors import InputError
from .attention import SpatialTransformer
from .resblock import Downsample, ResBlock, Upsample
from .sfa_tfa import SFA, TFA, LRConditionEncoder
from .temporal import SpatialTemporalConv, TemporalAttention, frames_of
from .timestep import normalization, timestep_embedding, zero_module

__all__ = ["UNetConfig", "UNetModel", "EmbedSequential", "SATeCoBlock",
           "sd_to_mgld_state_dict", "mgld_to_sd_state_dict", "count_parameters"]

PREDICTIONS = ("eps", "v")


@dataclass
class UNetConfig:
    """Hyperparameters of the ldm UNet; defaults are SD 2.1-base (v2-inference.yaml)."""

    in_channels: int = 4
    out_channels: int = 4
    model_channels: int = 320
    channel_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: tuple[int, ...] | int = 2
    attention_resolutions: tuple[int, ...] = (4, 2, 1)
    num_head_channels: int = 64          # -1: use num_heads instead (SD 1.x: num_heads 8)
    num_heads: int = -1
    transformer_depth: int = 1
    context_dim: int | None = 1024
    use_linear_in_transformer: bool = True
    prediction: str = "eps"              # 'eps' | 'v' (SD 2.1-base: eps; SD 2.1-768: v)
    dropout: float = 0.0
    # StableSR: SPADE in every ResBlock, fed by the structure encoder.
    sft: bool = False
    sft_channels: int = 256
    spade_hidden: int = 128
    # MGLD-VSR temporal middle block.
    temporal_middle: bool = False
    # SATeCo SFA + TFA after every output block.
    sfa_tfa: bool = False
    sfa_tfa_cond_channels: int = 64
    sfa_hidden: int = 128
    tfa_window: int = 8
    tfa_frames: int = 6

    def __post_init__(self):
        self.channel_mult = tuple(int(m) for m in self.channel_mult)
        if isinstance(self.num_res_blocks, int):
            self.num_res_blocks = (self.num_res_blocks,) * len(self.channel_mult)
        self.num_res_blocks = tuple(int(n) for n in self.num_res_blocks)
        self.attention_resolutions = tuple(sorted((int(a) for a in self.attention_resolutions), reverse=True))
        if len(self.num_res_blocks) != len(self.channel_mult):
            raise InputError(f"UNetConfig.num_res_blocks: expected one count per level "
                             f"({len(self.channel_mult)}), got {self.num_res_blocks}")
        if self.prediction not in PREDICTIONS:
            raise InputError(f"UNetConfig.prediction: expected one of {PREDICTIONS}, got {self.prediction!r}")
        if (self.num_head_channels == -1) == (self.num_heads == -1):
            raise InputError("UNetConfig: set exactly one of num_head_channels and num_heads")
        for name in ("model_channels", "sft_channels", "sfa_tfa_cond_channels"):
            if getattr(self, name) <= 0:
                raise InputError(f"UNetConfig.{name}: expected a positive integer")

    def heads(self, ch: int) -> tuple[int, int]:
        """(heads, dim_head) at width ch, as ldm computes them (legacy=False)."""
        if self.num_head_channels != -1:
            heads = max(1, ch // self.num_head_channels)
        else:
            heads = self.num_heads
        return heads, ch // heads

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "UNetConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise InputError(f"UNetConfig: unknown fields {sorted(unknown)}")
        return cls(**d)

    @classmethod
    def sd21_base(cls, **kw) -> "UNetConfig":
        return cls(**kw)

    @classmethod
    def stablesr(cls, **kw) -> "UNetConfig":
        """StableSR (v2-finetune_text_T_512.yaml): SD 2.1-base + SFT, semb 256."""
        return cls(sft=True, sft_channels=256, **kw)

    @classmethod
    def mgld(cls, **kw) -> "UNetConfig":
        """MGLD-VSR (mgldvsr_512_realbasicvsr_deg.yaml): StableSR + temporal middle block."""
        return cls(sft=True, sft_channels=256, temporal_middle=True, **kw)


class EmbedSequential(nn.Sequential):
    """ldm's TimestepEmbedSequential: hands each layer the inputs it takes."""

    def forward(self, x, emb, context=None, struct_cond=None, num_frames=None, output_size=None):
        for layer in self:
            if isinstance(layer, ResBlock):
                x = layer(x, emb, struct_cond)
            elif isinstance(layer, SpatialTransformer):
                x = layer(x, context)
            elif isinstance(layer, (SpatialTemporalConv, TemporalAttention)):
                x = layer(x, num_frames)
            elif isinstance(layer, Upsample):
                x = layer(x, output_size)
            else:
                x = layer(x)
        return x


class SATeCoBlock(nn.Module):
    """SFA then TFA at one decoder block, conditioned on the LR pyramid."""

    def __init__(self, channels: int, cfg: UNetConfig):
        super().__init__()
        c = cfg.sfa_tfa_cond_channels
        self.sfa = SFA(channels, c, hidden=cfg.sfa_hidden)
        self.tfa = TFA(channels, c, window=cfg.tfa_window, frames=cfg.tfa_frames)

    def reset_parameters(self) -> None:
        self.sfa.reset_parameters()
        self.tfa.reset_parameters()

    def forward(self, x, cond: dict, num_frames=None):
        key = str(x.shape[-1])
        if key not in cond:
            raise InputError(f"lr_latent: no LR condition of width {key}; the LR latent must "
                             f"have the size of the noisy latent x")
        g = cond[key]
        return self.tfa(self.sfa(x, g, num_frames), g, num_frames)


class UNetModel(nn.Module):
    """ldm UNet. forward(x, timesteps, context, struct_cond=None, lr_latent=None, num_frames=None)."""

    def __init__(self, config: UNetConfig | None = None, **kw):
        super().__init__()
        cfg = config if config is not None else UNetConfig(**kw)
        self.config = cfg
        mc = cfg.model_channels
        emb_dim = mc * 4
        sft = cfg.sft_channels if cfg.sft else None

        def res(ch_in, ch_out=None):
            return ResBlock(ch_in, emb_dim, ch_out, cfg.dropout, sft, cfg.spade_hidden)

        def attn(ch):
            heads, dim_head = cfg.heads(ch)
            return SpatialTransformer(ch, heads, dim_head, cfg.transformer_depth, cfg.context_dim,
                                      cfg.use_linear_in_transformer)

        self.time_embed = nn.Sequential(nn.Linear(mc, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.input_blocks = nn.ModuleList([EmbedSequential(nn.Conv2d(cfg.in_channels, mc, 3, padding=1))])
        chans = [mc]
        ch, ds = mc, 1
        for level, mult in enumerate(cfg.channel_mult):
            for _ in range(cfg.num_res_blocks[level]):
                layers = [res(ch, mult * mc)]
                ch = mult * mc
                if ds in cfg.attention_resolutions:
                    layers.append(attn(ch))
                self.input_blocks.append(EmbedSequential(*layers))
                chans.append(ch)
            if level != len(cfg.channel_mult) - 1:
                self.input_blocks.append(EmbedSequential(Downsample(ch)))
                chans.append(ch)
                ds *= 2

        if cfg.temporal_middle:
            heads, dim_head = cfg.heads(ch)
            self.middle_block = EmbedSequential(
                res(ch), SpatialTemporalConv(ch), attn(ch),
                TemporalAttention(ch, heads, dim_head), res(ch), SpatialTemporalConv(ch))
        else:
            self.middle_block = EmbedSequential(res(ch), attn(ch), res(ch))

        self.output_blocks = nn.ModuleList()
        out_chans = []
        for level, mult in list(enumerate(cfg.channel_mult))[::-1]:
            for i in range(cfg.num_res_blocks[level] + 1):
                layers = [res(ch + chans.pop(), mc * mult)]
                ch = mc * mult
                if ds in cfg.attention_resolutions:
                    layers.append(attn(ch))
                if level and i == cfg.num_res_blocks[level]:
                    layers.append(Upsample(ch))
                    ds //= 2
                self.output_blocks.append(EmbedSequential(*layers))
                out_chans.append(ch)

        self.out = nn.Sequential(normalization(ch), nn.SiLU(),
                                 zero_module(nn.Conv2d(mc, cfg.out_channels, 3, padding=1)))

        if cfg.sfa_tfa:
            self.sateco_cond = LRConditionEncoder(cfg.in_channels, cfg.sfa_tfa_cond_channels,
                                                  len(cfg.channel_mult))
            self.sateco_blocks = nn.ModuleList(SATeCoBlock(c, cfg) for c in out_chans)
        else:
            self.sateco_cond = None
            self.sateco_blocks = None

    @property
    def dtype(self) -> torch.dtype:
        return self.time_embed[0].weight.dtype

    def forward(self, x: torch.Tensor, timesteps, context: torch.Tensor | None = None,
                struct_cond: dict | None = None, lr_latent: torch.Tensor | None = None,
                num_frames: int | None = None, **kwargs) -> torch.Tensor:
        """x [N,C,H,W] noisy latent; timesteps [N] (or a scalar); context [N or 1, L, D].

        struct_cond: StableSR structure features {str(width): [N,C,h,w]} (sft only).
        lr_latent: [N,C,H,W] LR latent driving SFA/TFA (sfa_tfa only; None skips them).
        num_frames: frames per clip for the temporal layers (None: the batch is one clip).
        """
        cfg = self.config
        if kwargs.get("y") is not None:
            raise InputError("y: class / noise-level conditioning is not supported by this UNet")
        unknown = sorted(k for k in kwargs if k != "y")
        if unknown:
            raise InputError(f"UNetModel.forward: unknown arguments {unknown}; expected x, "
                             f"timesteps, context, struct_cond, lr_latent, num_frames")
        if x.dim() != 4 or x.shape[1] != cfg.in_channels:
            raise InputError(f"x: expected a latent [N, {cfg.in_channels}, H, W], got {list(x.shape)}")
        n = x.shape[0]
        timesteps = torch.as_tensor(timesteps, device=x.device)
        if timesteps.dim() == 0 or timesteps.numel() == 1:
            timesteps = timesteps.reshape(1).expand(n)
        if timesteps.shape != (n,):
            raise InputError(f"timesteps: expected {n} values (one per latent) or one, "
                             f"got shape {list(timesteps.shape)}")
        if cfg.context_dim is not None and context is None:
            raise InputError("context: the UNet has cross-attention; pass the text embedding "
                             f"[N, L, {cfg.context_dim}] (the empty-prompt embedding for SR)")
        if cfg.sft and struct_cond is None:
            raise InputError("struct_cond: this UNet has SFT layers (StableSR/MGLD); pass the "
                             "structure encoder's output, or use the StructCondUNet wrapper")
        if cfg.temporal_middle or (cfg.sfa_tfa and lr_latent is not None):
            num_frames = frames_of(x, num_frames)

        dtype = self.dtype
        emb = self.time_embed(timestep_embedding(timesteps, cfg.model_channels).to(dtype))
        if context is not None:
            context = context.to(dtype)
        sateco = None
        if self.sateco_blocks is not None and lr_latent is not None:
            if lr_latent.shape[0] != n or lr_latent.shape[-2:] != x.shape[-2:]:
                raise InputError(f"lr_latent: expected [{n}, {cfg.in_channels}, {x.shape[-2]}, "
                                 f"{x.shape[-1]}] like x, got {list(lr_latent.shape)}")
            sateco = self.sateco_cond(lr_latent.to(dtype))

        h = x.to(dtype)
        hs = []
        for block in self.input_blocks:
            h = block(h, emb, context, struct_cond, num_frames)
            hs.append(h)
        h = self.middle_block(h, emb, context, struct_cond, num_frames)
        for i, block in enumerate(self.output_blocks):
            h = torch.cat([h, hs.pop()], dim=1)
            size = hs[-1].shape[-2:] if hs else None
            h = block(h, emb, context, struct_cond, num_frames, output_size=size)
            if sateco is not None:
                h = self.sateco_blocks[i](h, sateco, num_frames)
        return self.out(h).to(x.dtype)


# -- MGLD middle-block remapping ------------------------------------------------

_SD_TO_MGLD_MIDDLE = {"1": "2", "2": "4"}
_MGLD_TO_SD_MIDDLE = {"0": "0", "2": "1", "4": "2"}


def _remap_middle(sd: dict, table: dict, drop_others: bool) -> dict:
    out = {}
    for k, v in sd.items():
        head, sep, tail = k.partition("middle_block.")
        if not sep:
            out[k] = v
            continue
        idx, _, rest = tail.partition(".")
        if idx in table:
            out[f"{head}middle_block.{table[idx]}.{rest}"] = v
        elif not drop_others:
            out[k] = v
    return out


def sd_to_mgld_state_dict(sd: dict) -> dict:
    """SD/StableSR UNet keys -> MGLD temporal-middle layout (.1 -> .2, .2 -> .4).

    Works with or without a `model.diffusion_model.` prefix. The temporal
    layers (.1, .3, .5) are absent afterwards: load with strict=False and keep
    their identity initialisation (vsr_core.checkpoints.build_unet(sd,
    temporal_middle=True) does exactly that).
    """
    return _remap_middle(sd, _SD_TO_MGLD_MIDDLE, drop_others=False)


def mgld_to_sd_state_dict(sd: dict) -> dict:
    """MGLD layout -> SD layout, dropping the temporal middle layers (.1, .3, .5)."""
    return _remap_middle(sd, _MGLD_TO_SD_MIDDLE, drop_others=True)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
