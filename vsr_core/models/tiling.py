"""Tiled VAE encode / decode with overlap blending.

Large frames are cut into overlapping spatial tiles; each tile goes through
the network alone and the outputs are blended with weights that taper across
the overlaps (linearly or by a raised cosine) and are normalised by their sum.
Peak memory then depends on the tile size (and batch), not on the frame size,
apart from the output buffer itself.

Exactness
- If one tile covers the whole input, the network is called once on the
  whole input and the result is returned unchanged: bit-identical to the
  untiled call.
- Otherwise the result differs from the untiled one, because the VAE's
  GroupNorm statistics, its mid-block attention and the receptive field near
  tile edges all see only the tile. tests/test_vae_tiling.py measures this on
  a tiny RANDOM VAE with 2-3 tiles per side: mean |difference| ~0.23 against
  a mean |signal| ~0.43, an upper bound (a random network is far more
  sensitive to normalisation statistics than a trained one). With real SD
  weights, tiled decoding at 64-latent tiles with 16-32 overlap is common
  practice (ComfyUI's tiled VAE nodes; StableSR/MGLD average large pixel
  tiles uniformly); use tiles as large as memory allows. Not done here:
  sharing GroupNorm statistics across tiles, which would remove most of it.
- A tile's outer `margin` fraction of each overlap gets weight 0 (its zero
  padding spoils it), so for a purely local network the blend is exact.

All frames of the batch go through each tile together, so temporal layers
(the MGLD video decoder) see whole clips.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import torch

from ..errors import InputError
from ..progress import Reporter, get_reporter

__all__ = ["tile_starts", "ramp", "edge_ramp", "tile_weight", "tiled_map", "tiled_encode", "tiled_decode"]

BLENDS = ("cosine", "linear")


def tile_starts(length: int, tile: int, overlap: int, align: int = 1) -> list[int]:
    """Start offsets of tiles of size `tile` covering [0, length) with at least
    `overlap` overlap; starts are multiples of `align` (except the last one,
    which is flush with the end and a multiple of align if length is)."""
    if tile >= length:
        return [0]
    stride = max(align, (tile - overlap) // align * align)
    starts = list(range(0, length - tile, stride))
    last = length - tile
    if not starts or starts[-1] != last:
        starts.append(last)
    return starts


def ramp(n: int, blend: str, device=None, dtype=torch.float32) -> torch.Tensor:
    """n weights rising from ~0 to ~1 (exclusive): linear (i+0.5)/n or raised
    cosine 0.5 - 0.5 cos(pi (i+0.5)/n). A rising and a falling ramp of the
    same length add up to exactly 1 (a partition of unity)."""
    t = (torch.arange(n, device=device, dtype=torch.float64) + 0.5) / n
    if blend == "cosine":
        t = 0.5 - 0.5 * torch.cos(math.pi * t)
    return t.to(dtype)


def edge_ramp(n: int, blend: str, margin: float = 0.25, device=None) -> torch.Tensor:
    """Rising weight over an overlap of n samples: 0 on the first
    floor(margin*n) samples (the tile's own edge, where zero padding and the
    missing context make its output least reliable), a ramp across the middle,
    1 on the last floor(margin*n). edge_ramp + its mirror image == 1."""
    m = int(n * margin)
    m = min(m, (n - 1) // 2)
    return torch.cat([torch.zeros(m, device=device), ramp(n - 2 * m, blend, device),
                      torch.ones(m, device=device)])


def tile_weight(length: int, lo: int, hi: int, blend: str, margin: float = 0.25,
                device=None) -> torch.Tensor:
    """1-D weight over a tile: rising over `lo` samples at the start, falling
    over `hi` at the end (0 = an image border: no taper), 1 elsewhere."""
    w = torch.ones(length, device=device, dtype=torch.float32)
    if lo > 0:
        lo = min(lo, length)
        w[:lo] = torch.minimum(w[:lo], edge_ramp(lo, blend, margin, device))
    if hi > 0:
        hi = min(hi, length)
        w[length - hi:] = torch.minimum(w[length - hi:], edge_ramp(hi, blend, margin, device).flip(0))
    return w


def _check_blend(blend: str) -> None:
    if blend not in BLENDS:
        raise InputError(f"blend: expected one of {BLENDS}, got {blend!r}")


def tiled_map(fn: Callable[..., torch.Tensor], inputs: Sequence[torch.Tensor | None], *,
              tile: int, overlap: int, out_scale: float, align: int = 1, blend: str = "cosine",
              margin: float = 0.25, reporter: Reporter | None = None, desc: str = "tiles") -> torch.Tensor:
    """Apply `fn(*input_tiles)` over overlapping spatial tiles and blend.

    inputs[0] is the primary tensor [B,C,H,W]; tiles (size `tile`, overlap
    `overlap`, starts multiples of `align`) are in its pixel units. Every other
    input (or None) is cropped at the same place scaled by its own size
    relative to inputs[0] (e.g. encoder features at 2x or 4x the latent
    size). fn must return [B,C',h*out_scale,w*out_scale] for an [.., h, w]
    primary tile. Within each overlap the weights fall from 1 to 0 (linear
    or raised cosine), ignoring the outer `margin` fraction of each tile's
    overlap entirely; weights are normalised by their sum.
    """
    _check_blend(blend)
    x = inputs[0]
    B, _, H, W = x.shape
    tile, overlap, align = int(tile), int(overlap), max(1, int(align))
    if tile < align or tile % align:
        raise InputError(f"tile_size: expected a positive multiple of {align}, got {tile}")
    if not 0 <= margin < 0.5:
        raise InputError(f"margin: expected a fraction in [0, 0.5), got {margin}")
    if not 0 <= overlap < tile:
        raise InputError(f"overlap: expected 0 <= overlap < tile size {tile}, got {overlap}")
    if H % align or W % align:
        raise InputError(f"image: expected height and width divisible by {align}, got {H}x{W}")
    rep = get_reporter(reporter)
    if tile >= H and tile >= W:
        rep.check_interrupt()
        return fn(*inputs)

    scales = []
    for k, t in enumerate(inputs[1:], start=1):
        if t is None:
            scales.append(None)
            continue
        sh, sw = t.shape[-2] / H, t.shape[-1] / W
        if sh != sw or sh * H != t.shape[-2] or (sh >= 1 and sh != int(sh)) or (sh < 1 and (1 / sh) != int(1 / sh)):
            raise InputError(f"tiled input {k}: its size {tuple(t.shape[-2:])} is not an integer "
                             f"multiple or fraction of the primary size {(H, W)}")
        scales.append(sh)

    ys, xs = tile_starts(H, tile, overlap, align), tile_starts(W, tile, overlap, align)
    rep.start(len(ys) * len(xs), desc)
    out = wsum = None
    for y0 in ys:
        for x0 in xs:
            rep.check_interrupt()
            y1, x1 = min(y0 + tile, H), min(x0 + tile, W)
            crops = [x[..., y0:y1, x0:x1]]
            for t, s in zip(inputs[1:], scales):
                crops.append(None if t is None else
                             t[..., int(y0 * s):int(y1 * s), int(x0 * s):int(x1 * s)])
            y = fn(*crops)
            oy0, oy1 = round(y0 * out_scale), round(y1 * out_scale)
            ox0, ox1 = round(x0 * out_scale), round(x1 * out_scale)
            if y.shape[-2:] != (oy1 - oy0, ox1 - ox0):
                raise InputError(f"tiled function returned {tuple(y.shape[-2:])} for a tile of "
                                 f"{(y1 - y0, x1 - x0)}; expected scale {out_scale}")
            if out is None:
                out = torch.zeros(y.shape[0], y.shape[1], round(H * out_scale), round(W * out_scale),
                                  device=y.device, dtype=torch.float32)
                wsum = torch.zeros(1, 1, out.shape[2], out.shape[3], device=y.device, dtype=torch.float32)
            ov = round(overlap * out_scale)
            wy = tile_weight(oy1 - oy0, ov if y0 > 0 else 0, ov if y1 < H else 0, blend, margin, y.device)
            wx = tile_weight(ox1 - ox0, ov if x0 > 0 else 0, ov if x1 < W else 0, blend, margin, y.device)
            wt = wy[:, None] * wx[None, :]
            out[..., oy0:oy1, ox0:ox1] += y.float() * wt
            wsum[..., oy0:oy1, ox0:ox1] += wt
            rep.update(1)
    return (out / wsum).to(x.dtype if x.is_floating_point() else torch.float32)


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
                 lr_image: torch.Tensor | None = None,
                 lr_latent: torch.Tensor | None = None, margin: float = 0.25, **decode_kwargs) -> torch.Tensor:
    """vae.decode over latent tiles: z [B,4,h,w] (unscaled) -> image [B,3,h*f,w*f].

    tile_size/overlap in latent cells. For a CFW / video VAE:
    - `enc_features` (from encode_with_features of the whole LR image) are
      cropped per tile; or
    - `lr_image` [B,3,h*f,w*f]: each tile's encoder features are computed from
      the matching LR crop, so the full-resolution features never exist at
      once (the memory-bounded way);
    - `lr_latent` (SFA/TFA condition) is cropped per tile;
    - other keyword arguments (w, num_frames) are passed to vae.decode.
    """
    if enc_features is not None and lr_image is not None:
        raise InputError("tiled_decode: pass either enc_features or lr_image, not both")
    f = vae.downsample_factor
    feats = list(enc_features) if enc_features is not None else []
    n_feats = len(feats)
    extra = feats + [lr_image, lr_latent]
    if lr_latent is not None and lr_latent.shape[-2:] != z.shape[-2:]:
        raise InputError(f"lr_latent: expected the latent size {tuple(z.shape[-2:])}, "
                         f"got {tuple(lr_latent.shape[-2:])}")
    if lr_image is not None and tuple(lr_image.shape[-2:]) != (z.shape[-2] * f, z.shape[-1] * f):
        raise InputError(f"lr_image: expected {z.shape[-2] * f}x{z.shape[-1] * f} pixels for a "
                         f"{z.shape[-2]}x{z.shape[-1]} latent, got {tuple(lr_image.shape[-2:])}")

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
