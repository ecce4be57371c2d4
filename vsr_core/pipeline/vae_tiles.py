"""The VAE through ops.tiling: encode over pixel tiles, decode over latent tiles (with CFW/video-VAE inputs).

Exactness: a single tile is bit-identical to the untiled call; with several,
GroupNorm statistics, mid-block attention and the receptive field near tile
edges see only the tile (ops/tiling.py has the measured size of this).
"""
from __future__ import annotations

from typing import Sequence

import torch

from ..errors import InputError
from ..ops.tiling import tiled_map
from ..progress import Reporter


def tiled_encode(vae, x: torch.Tensor, tile_size: int = 512, overlap: int = 64,
                 blend: str = "cosine", batch_size: int | None = None,
                 reporter: Reporter | None = None, margin: float = 0.25) -> torch.Tensor:
    """vae.encode over pixel tiles: x [B,3,H,W] in [-1,1] -> unscaled latent mean.

    tile_size/overlap in pixels, multiples of the VAE's downsampling factor
    (8 for SD). H and W must be multiples of it too. batch_size limits how
    many frames go through the encoder at once (frames are independent).
    """
    f = vae.downsample_factor
    if x.ndim != 4:
        raise InputError(f"image: expected [B,3,H,W], got {tuple(x.shape)}")
    chunks = [x] if not batch_size else list(torch.split(x, int(batch_size)))
    outs = [tiled_map(vae.encode, [c], tile=tile_size, overlap=overlap, out_scale=1 / f, align=f,
                      blend=blend, margin=margin, reporter=reporter, desc="VAE encode tiles") for c in chunks]
    return outs[0] if len(outs) == 1 else torch.cat(outs)


def tiled_decode(vae, z: torch.Tensor, tile_size: int = 64, overlap: int = 16,
                 blend: str = "cosine", reporter: Reporter | None = None, *,
                 enc_features: Sequence[torch.Tensor] | None = None,
                 upscaled_image: torch.Tensor | None = None,
                 lr_latent: torch.Tensor | None = None, margin: float = 0.25, **decode_kwargs) -> torch.Tensor:
    """vae.decode over latent tiles: z [B,4,h,w] (unscaled) -> image [B,3,h*f,w*f].

    tile_size/overlap in latent cells. For a CFW / video VAE:
    - `enc_features` (from encode_with_features of the whole LR image) are
      cropped per tile; or
    - `upscaled_image` [B,3,h*f,w*f]: each tile's encoder features are computed from
      the matching LR crop, so the full-resolution features never exist at
      once (the memory-bounded way);
    - `lr_latent` (SFA/TFA condition) is cropped per tile;
    - other keyword arguments (w, num_frames) are passed to vae.decode.
    """
    if enc_features is not None and upscaled_image is not None:
        raise InputError("tiled_decode: pass either enc_features or upscaled_image, not both")
    f = vae.downsample_factor
    feats = list(enc_features) if enc_features is not None else []
    n_feats = len(feats)
    extra = feats + [upscaled_image, lr_latent]
    if lr_latent is not None and lr_latent.shape[-2:] != z.shape[-2:]:
        raise InputError(f"lr_latent: expected the latent size {tuple(z.shape[-2:])}, "
                         f"got {tuple(lr_latent.shape[-2:])}")
    if upscaled_image is not None and tuple(upscaled_image.shape[-2:]) != (z.shape[-2] * f, z.shape[-1] * f):
        raise InputError(f"upscaled_image: expected {z.shape[-2] * f}x{z.shape[-1] * f} pixels for a "
                         f"{z.shape[-2]}x{z.shape[-1]} latent, got {tuple(upscaled_image.shape[-2:])}")

    def run(zt, *rest):
        ft = list(rest[:n_feats]) or None
        img, lat = rest[n_feats], rest[n_feats + 1]
        kw = dict(decode_kwargs)
        if img is not None:
            _, ft = vae.encode_with_features(img)
        if ft is not None:
            kw["enc_features"] = ft
        if lat is not None:
            kw["lr_latent"] = lat
        return vae.decode(zt, **kw)

    return tiled_map(run, [z] + extra, tile=tile_size, overlap=overlap, out_scale=f, align=1,
                     blend=blend, margin=margin, reporter=reporter, desc="VAE decode tiles")
