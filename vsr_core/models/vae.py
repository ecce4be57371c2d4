"""AutoencoderKL in the ldm (CompVis / Stability) key layout.

This is the Stable Diffusion 1.x/2.x VAE exactly as `ldm.models.autoencoder.
AutoencoderKL` lays it out, so the `first_stage_model.*` weights of an SD 2.1,
StableSR or MGLD checkpoint load key for key (after the prefix is stripped):

    encoder.conv_in
    encoder.down.{i}.block.{j}.{norm1,conv1,norm2,conv2,nin_shortcut}
    encoder.down.{i}.attn.{j}.{norm,q,k,v,proj_out}      (only if attn at level i)
    encoder.down.{i}.downsample.conv                       (all but the last level)
    encoder.mid.{block_1,attn_1,block_2}
    encoder.norm_out, encoder.conv_out
    quant_conv, post_quant_conv
    decoder.conv_in, decoder.mid.*, decoder.up.{i}.block.{j} (num_res_blocks + 1
    blocks per level), decoder.up.{i}.upsample.conv (all but level 0),
    decoder.norm_out, decoder.conv_out

Conventions
- `encode(x)`: x is an image batch [B,3,H,W] in [-1, 1]; returns the posterior
  MEAN, unscaled (what ldm calls `posterior.mode()`).
- `decode(z)`: z is an unscaled latent [B,4,h,w]; returns an image in about
  [-1, 1] (not clamped).
- `SCALE_FACTOR` (0.18215, the SD 1.x/2.x `scale_factor`) is NOT applied by
  encode/decode: the diffusion model works on `SCALE_FACTOR * encode(x)`, and a
  sampled latent is decoded with `decode(z / SCALE_FACTOR)`. ComfyUI's VAE
  applies it internally, ours leaves it to the caller, exactly like ldm's
  `first_stage_model`.

The decoder's main loop has three hooks (`_after_mid_block_1`,
`_after_up_block`, `_end_of_level`) that do nothing here; the CFW decoder
(models/cfw.py) and the temporal video decoder (models/video_vae.py) override
them, so all variants share one implementation of the ldm data flow.

Checkpoint entry points used by vsr_core.checkpoints:
- `detect_vae_format(keys)` -> 'autoencoder_kl' | 'stablesr_cfw' |
  'mgld_video_cfw' | None
- `build_vae_from_state_dict(sd, device='meta')` -> the right module, built
  on `device` and NOT loaded (load with `load_state_dict(sd, assign=True)`,
  which uses the state dict's tensors in place, so memory is not doubled).
- `load_vae_state_dict(sd)` does detect + build + checked load in one call.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import InputError

__all__ = [
    "SCALE_FACTOR", "VAEConfig", "AutoencoderKL", "Encoder", "Decoder",
    "ResnetBlock", "AttnBlock", "Downsample", "Upsample", "Normalize", "param_count",
]

#: SD 1.x / 2.x latent scale (ldm `scale_factor`). Not applied by encode/decode.
SCALE_FACTOR = 0.18215



# ----------------------------------------------------------------------------
# Building blocks (ldm `ldm/modules/diffusionmodules/model.py`)
# ----------------------------------------------------------------------------

def Normalize(channels: int, num_groups: int = 32) -> nn.GroupNorm:
    """ldm's Normalize: GroupNorm(32, C, eps=1e-6, affine)."""
    return nn.GroupNorm(num_groups=num_groups, num_channels=channels, eps=1e-6, affine=True)


def nonlinearity(x: torch.Tensor) -> torch.Tensor:
    return F.silu(x)


class ResnetBlock(nn.Module):
    """ldm ResnetBlock without time embedding (temb_channels=0 in the VAE).

    `shortcut` names the 1x1 projection used when the width changes: ldm calls
    it nin_shortcut, StableSR's CFW blocks conv_out (keys must match each).
    """

    def __init__(self, in_channels: int, out_channels: int | None = None, shortcut: str = "nin_shortcut"):
        super().__init__()
        out_channels = in_channels if out_channels is None else out_channels
        self.in_channels, self.out_channels = in_channels, out_channels
        self.norm1 = Normalize(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, 1, 1)
        self.norm2 = Normalize(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1)
        self.shortcut_name = shortcut
        if in_channels != out_channels:
            setattr(self, shortcut, nn.Conv2d(in_channels, out_channels, 1, 1, 0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(nonlinearity(self.norm1(x)))
        h = self.conv2(nonlinearity(self.norm2(h)))  # dropout is 0 in every SD VAE
        if self.in_channels != self.out_channels:
            x = getattr(self, self.shortcut_name)(x)
        return x + h


class AttnBlock(nn.Module):
    """ldm's single-head spatial self-attention with 1x1 conv projections."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = Normalize(channels)
        self.q = nn.Conv2d(channels, channels, 1)
        self.k = nn.Conv2d(channels, channels, 1)
        self.v = nn.Conv2d(channels, channels, 1)
        self.proj_out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(x)
        b, c, hh, ww = h.shape
        # Tokens-last and contiguous: otherwise the CPU backend falls back to the math path, which
        # materialises the (hw x hw) matrix (1 GB for a 128x128 latent) and is ~2x slower.
        q, k, v = (f(h).reshape(b, 1, c, hh * ww).transpose(2, 3).contiguous() for f in (self.q, self.k, self.v))
        out = F.scaled_dot_product_attention(q, k, v)
        out = out.transpose(2, 3).reshape(b, c, hh, ww)
        return x + self.proj_out(out)


class Downsample(nn.Module):
    """Stride-2 3x3 conv after asymmetric zero padding (0,1,0,1), as ldm."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, 2, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1), mode="constant", value=0.0))


class Upsample(nn.Module):
    """Nearest x2 then a 3x3 conv, as ldm."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


# ----------------------------------------------------------------------------
# Config
# ----------------------------------------------------------------------------

@dataclass(frozen=True)
class VAEConfig:
    """Shape of an ldm AutoencoderKL. Defaults are the SD 1.x/2.x VAE.

    attn_levels: indices of the levels that have attention after each
    ResnetBlock (ldm `attn_resolutions`, expressed per level so it does not
    depend on a nominal resolution). Empty for every SD VAE.
    """
    ch: int = 128
    ch_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int = 2
    z_channels: int = 4
    embed_dim: int = 4
    double_z: bool = True
    in_channels: int = 3
    out_ch: int = 3
    attn_levels: tuple[int, ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "ch_mult", tuple(int(m) for m in self.ch_mult))
        object.__setattr__(self, "attn_levels", tuple(int(m) for m in self.attn_levels))
        for name in ("ch", "num_res_blocks", "z_channels", "embed_dim", "in_channels", "out_ch"):
            if int(getattr(self, name)) < 1:
                raise InputError(f"VAEConfig.{name}: expected a positive integer, got {getattr(self, name)}")
        if not self.ch_mult or min(self.ch_mult) < 1:
            raise InputError(f"VAEConfig.ch_mult: expected positive multipliers, got {self.ch_mult}")
        if not self.double_z:
            raise InputError("VAEConfig.double_z: AutoencoderKL needs double_z=True "
                             "(the encoder predicts mean and log-variance)")
        for c in {self.ch * m for m in self.ch_mult} | {self.ch}:
            if c % 32:
                raise InputError(f"VAEConfig.ch/ch_mult: every width must be a multiple of 32 "
                                 f"(GroupNorm(32)), got width {c}")

    @property
    def num_levels(self) -> int:
        return len(self.ch_mult)

    @property
    def downsample_factor(self) -> int:
        """Pixels per latent cell along one axis (8 for SD)."""
        return 2 ** (self.num_levels - 1)

    def widths(self) -> list[int]:
        return [self.ch * m for m in self.ch_mult]


# ----------------------------------------------------------------------------
# Encoder / Decoder
# ----------------------------------------------------------------------------

class _Level(nn.Module):
    """Holder giving the ldm key names `block`, `attn`, `downsample`/`upsample`."""


class Encoder(nn.Module):
    def __init__(self, cfg: VAEConfig):
        super().__init__()
        self.cfg = cfg
        ch = cfg.ch
        self.conv_in = nn.Conv2d(cfg.in_channels, ch, 3, 1, 1)
        in_ch_mult = (1,) + cfg.ch_mult
        self.down = nn.ModuleList()
        block_in = ch
        for i in range(cfg.num_levels):
            level = _Level()
            level.block = nn.ModuleList()
            level.attn = nn.ModuleList()
            block_in = ch * in_ch_mult[i]
            block_out = ch * cfg.ch_mult[i]
            for _ in range(cfg.num_res_blocks):
                level.block.append(ResnetBlock(block_in, block_out))
                block_in = block_out
                if i in cfg.attn_levels:
                    level.attn.append(AttnBlock(block_in))
            if i != cfg.num_levels - 1:
                level.downsample = Downsample(block_in)
            self.down.append(level)
        self.mid = _Level()
        self.mid.block_1 = ResnetBlock(block_in, block_in)
        self.mid.attn_1 = AttnBlock(block_in)
        self.mid.block_2 = ResnetBlock(block_in, block_in)
        self.norm_out = Normalize(block_in)
        self.conv_out = nn.Conv2d(block_in, 2 * cfg.z_channels, 3, 1, 1)

    def forward(self, x: torch.Tensor, return_features: bool = False):
        """Encoder trunk. With return_features, also the list of CFW features.

        The features are those StableSR's `Encoder.forward(return_fea=True)`
        collects: the output of the last block (and attention) of levels
        1 .. num_levels-2, before that level's downsample; feature k belongs
        to decoder level k+1 (for SD: [256ch at H/2, 512ch at H/4]).
        """
        feats = []
        h = self.conv_in(x)
        n = self.cfg.num_levels
        for i, level in enumerate(self.down):
            for j, block in enumerate(level.block):
                h = block(h)
                if len(level.attn) > 0:
                    h = level.attn[j](h)
            if return_features and 1 <= i <= n - 2:
                feats.append(h)
            if i != n - 1:
                h = level.downsample(h)
        h = self.mid.block_1(h)
        h = self.mid.attn_1(h)
        h = self.mid.block_2(h)
        h = self.conv_out(nonlinearity(self.norm_out(h)))
        return (h, feats) if return_features else h


class Decoder(nn.Module):
    """ldm Decoder. Subclasses add layers through the three hooks."""

    def __init__(self, cfg: VAEConfig):
        super().__init__()
        self.cfg = cfg
        ch = cfg.ch
        block_in = ch * cfg.ch_mult[-1]
        self.conv_in = nn.Conv2d(cfg.z_channels, block_in, 3, 1, 1)
        self.mid = _Level()
        self.mid.block_1 = ResnetBlock(block_in, block_in)
        self.mid.attn_1 = AttnBlock(block_in)
        self.mid.block_2 = ResnetBlock(block_in, block_in)
        levels = [None] * cfg.num_levels
        for i in reversed(range(cfg.num_levels)):
            level = _Level()
            level.block = nn.ModuleList()
            level.attn = nn.ModuleList()
            block_out = ch * cfg.ch_mult[i]
            for _ in range(cfg.num_res_blocks + 1):
                level.block.append(ResnetBlock(block_in, block_out))
                block_in = block_out
                if i in cfg.attn_levels:
                    level.attn.append(AttnBlock(block_in))
            if i != 0:
                level.upsample = Upsample(block_in)
            levels[i] = level
        self.up = nn.ModuleList(levels)
        self.norm_out = Normalize(block_in)
        self.conv_out = nn.Conv2d(block_in, cfg.out_ch, 3, 1, 1)

    # Hooks: identity here.
    def _after_mid_block_1(self, h: torch.Tensor, ctx: dict) -> torch.Tensor:
        return h

    def _after_up_block(self, h: torch.Tensor, level: int, block: int, ctx: dict) -> torch.Tensor:
        return h

    def _end_of_level(self, h: torch.Tensor, level: int, ctx: dict) -> torch.Tensor:
        return h

    def forward(self, z: torch.Tensor, ctx: dict | None = None) -> torch.Tensor:
        ctx = {} if ctx is None else ctx
        h = self.conv_in(z)
        h = self.mid.block_1(h)
        h = self._after_mid_block_1(h, ctx)
        h = self.mid.attn_1(h)
        h = self.mid.block_2(h)
        for i in reversed(range(self.cfg.num_levels)):
            level = self.up[i]
            for j, block in enumerate(level.block):
                h = block(h)
                h = self._after_up_block(h, i, j, ctx)
                if len(level.attn) > 0:
                    h = level.attn[j](h)
            h = self._end_of_level(h, i, ctx)
            if i != 0:
                h = level.upsample(h)
        return self.conv_out(nonlinearity(self.norm_out(h)))


def _check_image(x: torch.Tensor, channels: int, name: str = "image") -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] != channels:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise InputError(f"{name}: expected a tensor [B,{channels},H,W], got {shape}")
    if not x.is_floating_point():
        raise InputError(f"{name}: expected a floating-point tensor, got {x.dtype}")


class AutoencoderKL(nn.Module):
    """The SD VAE. encode -> unscaled posterior mean; decode -> image in [-1,1].

    Subclasses set `decoder_class`; extra keyword arguments go to it.
    """

    format_name = "autoencoder_kl"
    decoder_class = Decoder
    fuses_lr_features = False       # decode(..., enc_features, w): StableSR's CFW
    temporal_decoder = False        # decode(..., num_frames): MGLD's decoder mixes frames

    def __init__(self, config: VAEConfig | None = None, **decoder_options):
        super().__init__()
        self.config = config or VAEConfig()
        cfg = self.config
        self.encoder = Encoder(cfg)
        self.decoder = self.decoder_class(cfg, **decoder_options)
        self.quant_conv = nn.Conv2d(2 * cfg.z_channels, 2 * cfg.embed_dim, 1)
        self.post_quant_conv = nn.Conv2d(cfg.embed_dim, cfg.z_channels, 1)

    scale_factor = SCALE_FACTOR  # documented constant, never applied here

    @property
    def downsample_factor(self) -> int:
        return self.config.downsample_factor

    @property
    def latent_channels(self) -> int:
        return self.config.embed_dim

    def encode_moments(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, logvar) of the diagonal Gaussian posterior; logvar clamped to
        [-30, 20] as ldm's DiagonalGaussianDistribution does."""
        _check_image(x, self.config.in_channels)
        moments = self.quant_conv(self.encoder(x))
        mean, logvar = torch.chunk(moments, 2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x [B,3,H,W] in [-1,1] -> unscaled posterior mean [B,embed_dim,H/f,W/f]."""
        _check_image(x, self.config.in_channels)
        moments = self.quant_conv(self.encoder(x))
        return moments[:, : self.config.embed_dim]

    def encode_with_features(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Posterior mean plus the encoder features the CFW decoder fuses."""
        _check_image(x, self.config.in_channels)
        h, feats = self.encoder(x, return_features=True)
        moments = self.quant_conv(h)
        return moments[:, : self.config.embed_dim], feats

    def sample(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """A sample of the posterior (mean + std * noise)."""
        mean, logvar = self.encode_moments(x)
        noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        return mean + torch.exp(0.5 * logvar) * noise

    def _check_latent(self, z: torch.Tensor) -> None:
        _check_image(z, self.config.embed_dim, name="latent")

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Unscaled latent [B,embed_dim,h,w] -> image [B,3,h*f,w*f] in about [-1,1]."""
        self._check_latent(z)
        return self.decoder(self.post_quant_conv(z))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruction through the posterior mean."""
        return self.decode(self.encode(x))


# ----------------------------------------------------------------------------
# State-dict helpers
# ----------------------------------------------------------------------------

def param_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
