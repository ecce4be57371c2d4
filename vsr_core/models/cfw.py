"""StableSR's Controllable Feature Wrapping (CFW) VAE decoder.

Same computation and key names as StableSR's `Decoder_Mix` +
`Fuse_sft_block_RRDB` (ldm/modules/diffusionmodules/model.py) and MGLD-VSR's
`Fuse_sft_block_ResidualDenseBlock`:

    decoder.fusion_layer_{l}.encode_enc_1.{norm1,conv1,norm2,conv2,conv_out}  ResBlock(2C -> C)
    decoder.fusion_layer_{l}.encode_enc_2.{n}.rdb{1,2,3}.conv{1..5}           RRDB x num_block   (StableSR)
    decoder.fusion_layer_{l}.encode_enc_2.{n}.conv{1..5}                      RDB x num_block    (MGLD)
    decoder.fusion_layer_{l}.encode_enc_3.{norm1,conv1,norm2,conv2}           ResBlock(C -> C)

for decoder levels l = 1 .. num_levels-2 (SD: l = 1 at 256 ch / H/2 and l = 2
at 512 ch / H/4). At the end of level l (after its ResnetBlocks, before its
upsample) the decoder feature becomes

    dec + w * encode_enc_3(encode_enc_2(encode_enc_1(cat[enc_l, dec])))

where enc_l is the encoder feature of the LR image at the same level (the
output of encoder level l's last block, see `Encoder.forward`). Use
`vae.encode_with_features(lr_image)` to get the latent and the features, then
`vae.decode(z, enc_features, w)`.

The fusion weight w is a forward argument: 0.5 is StableSR's default
(`--dec_w 0.5`), 1.0 MGLD's (`--dec_w 1.0`). w = 0 or `enc_features=None`
gives the plain SD decoder.
"""
from __future__ import annotations

import re
from typing import Mapping, Sequence

import torch
import torch.nn as nn

from ..errors import CheckpointError, InputError
from .rrdbnet import RRDB, ResidualDenseBlock
from .vae import AutoencoderKL, Decoder, ResnetBlock, VAEConfig

__all__ = ["CFWResBlock", "ResidualDenseBlock", "RRDB", "FuseBlock", "CFWDecoder",
           "CFWAutoencoderKL", "infer_fusion", "STABLESR_FUSION_W", "MGLD_FUSION_W"]

STABLESR_FUSION_W = 0.5
MGLD_FUSION_W = 1.0


class CFWResBlock(ResnetBlock):
    """StableSR's `ResBlock`: ldm's ResnetBlock with its shortcut named conv_out."""

    def __init__(self, in_channels: int, out_channels: int | None = None):
        super().__init__(in_channels, out_channels, shortcut="conv_out")


class FuseBlock(nn.Module):
    """`Fuse_sft_block_RRDB` (kind='rrdb') / `Fuse_sft_block_ResidualDenseBlock` (kind='rdb')."""

    def __init__(self, in_ch: int, out_ch: int, num_block: int = 2, num_grow_ch: int = 32,
                 kind: str = "rrdb"):
        super().__init__()
        if kind not in ("rrdb", "rdb"):
            raise InputError(f"fusion kind: expected 'rrdb' or 'rdb', got {kind!r}")
        block = RRDB if kind == "rrdb" else ResidualDenseBlock
        self.encode_enc_1 = CFWResBlock(2 * in_ch, in_ch)
        self.encode_enc_2 = nn.Sequential(*[block(in_ch, num_grow_ch) for _ in range(num_block)])
        self.encode_enc_3 = CFWResBlock(in_ch, out_ch)

    def forward(self, enc_feat: torch.Tensor, dec_feat: torch.Tensor, w: float = 1.0) -> torch.Tensor:
        f = self.encode_enc_1(torch.cat([enc_feat, dec_feat], dim=1))
        f = self.encode_enc_3(self.encode_enc_2(f))
        return dec_feat + w * f


class CFWDecoder(Decoder):
    """ldm Decoder plus fusion_layer_{l} at levels 1..L-2 (fusion=None: none)."""

    def __init__(self, cfg: VAEConfig, fusion: str | None = "rrdb", num_fuse_block: int = 2,
                 num_grow_ch: int = 32):
        super().__init__(cfg)
        self.fusion = fusion
        self.num_fuse_block, self.num_grow_ch = int(num_fuse_block), int(num_grow_ch)
        self.fusion_levels = tuple(range(1, cfg.num_levels - 1)) if fusion else ()
        for lvl in self.fusion_levels:
            c = cfg.ch * cfg.ch_mult[lvl]
            setattr(self, f"fusion_layer_{lvl}",
                    FuseBlock(c, c, num_block=num_fuse_block, num_grow_ch=num_grow_ch, kind=fusion))

    def expected_feature_shapes(self, latent_hw: tuple[int, int]) -> list[tuple[int, int, int]]:
        """(C, H, W) of each encoder feature the fusion layers expect."""
        h, w = latent_hw
        n = self.cfg.num_levels
        return [(self.cfg.ch * self.cfg.ch_mult[lvl], h * 2 ** (n - 1 - lvl), w * 2 ** (n - 1 - lvl))
                for lvl in self.fusion_levels]

    def _end_of_level(self, h: torch.Tensor, level: int, ctx: dict) -> torch.Tensor:
        feats = ctx.get("enc_features")
        if feats is not None and level in self.fusion_levels:
            h = getattr(self, f"fusion_layer_{level}")(feats[level - 1], h, ctx.get("w", 1.0))
        return h


class CFWAutoencoderKL(AutoencoderKL):
    """AutoencoderKL whose decoder fuses LR encoder features (StableSR CFW).

    decode(z, enc_features, w): enc_features from `encode_with_features` of
    the LR (upscaled) image; w defaults to `default_w` (0.5, StableSR).
    """

    format_name = "stablesr_cfw"
    decoder_class = CFWDecoder
    fuses_lr_features = True

    def __init__(self, config: VAEConfig | None = None, fusion: str | None = "rrdb",
                 num_fuse_block: int = 2, num_grow_ch: int = 32,
                 default_w: float = STABLESR_FUSION_W, **decoder_options):
        super().__init__(config, fusion=fusion, num_fuse_block=num_fuse_block,
                         num_grow_ch=num_grow_ch, **decoder_options)
        self.default_w = float(default_w)

    def _decode_ctx(self, z: torch.Tensor, enc_features: Sequence[torch.Tensor] | None,
                    w: float | None) -> dict:
        self._check_latent(z)
        w = self.default_w if w is None else float(w)
        if enc_features is not None and self.decoder.fusion_levels:
            enc_features = list(enc_features)
            want = self.decoder.expected_feature_shapes(tuple(z.shape[-2:]))
            if len(enc_features) < len(want):
                raise InputError(f"enc_features: expected {len(want)} encoder features "
                                 f"(from encode_with_features), got {len(enc_features)}")
            for k, (f, s) in enumerate(zip(enc_features, want)):
                if f.ndim != 4 or f.shape[0] != z.shape[0] or tuple(f.shape[1:]) != s:
                    raise InputError(
                        f"enc_features[{k}]: expected shape [{z.shape[0]}, {s[0]}, {s[1]}, {s[2]}] "
                        f"to match the latent {list(z.shape)}, got {list(f.shape)}")
        return {"enc_features": enc_features, "w": w}

    def decode(self, z: torch.Tensor, enc_features: Sequence[torch.Tensor] | None = None,
               w: float | None = None) -> torch.Tensor:
        """Unscaled latent -> image; fuses `enc_features` with weight `w`
        (default `default_w`). Without enc_features: the plain SD decoder."""
        ctx = self._decode_ctx(z, enc_features, w)
        return self.decoder(self.post_quant_conv(z), ctx)

    def forward(self, x: torch.Tensor, w: float | None = None) -> torch.Tensor:
        z, feats = self.encode_with_features(x)
        return self.decode(z, feats, w)


def infer_fusion(sd: Mapping[str, torch.Tensor]) -> dict:
    """Fusion options (fusion kind, num_fuse_block, num_grow_ch) from keys."""
    keys = [k for k in sd if k.startswith("decoder.fusion_layer_")]
    if not keys:
        return {"fusion": None}
    rrdb = [k for k in keys if re.match(r"decoder\.fusion_layer_\d+\.encode_enc_2\.\d+\.rdb\d\.", k)]
    rdb = [k for k in keys if re.match(r"decoder\.fusion_layer_\d+\.encode_enc_2\.\d+\.conv\d\.", k)]
    if rrdb and rdb:
        raise CheckpointError("VAE state dict: fusion layers mix RRDB (StableSR, "
                              "'encode_enc_2.N.rdbK.convJ') and RDB (MGLD, "
                              "'encode_enc_2.N.convJ') keys; expected one layout")
    kind = "rrdb" if rrdb else "rdb"
    found = rrdb or rdb
    nums = {int(re.match(r"decoder\.fusion_layer_\d+\.encode_enc_2\.(\d+)\.", k).group(1)) for k in found}
    num_block = max(nums) + 1 if nums else 2
    grow = 32
    for k in found:
        if k.endswith("conv1.weight"):
            grow = int(sd[k].shape[0])
            break
    return {"fusion": kind, "num_fuse_block": num_block, "num_grow_ch": grow}
