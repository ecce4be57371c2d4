"""Spatial tiling, the one tiler of the project: where tiles go and how their outputs blend.

Large frames are cut into overlapping spatial tiles; each tile goes through
a network alone and the outputs are blended with weights normalised by their
sum, so peak memory depends on the tile size (and batch), not on the frame
size, apart from the output buffer itself. Two weightings:
- `tiled_map` (VAE encode/decode, the upscaler): weights that taper across
  the overlaps, linearly or by a raised cosine;
- `tiled_denoise` (diffusion latents, StableSR's canvas): Gaussian weights that
  peak at each tile's centre, for (x0, eps) pairs at every sampling step.

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

__all__ = ["tile_starts", "tile_boxes", "ramp", "edge_ramp", "tile_weight", "tiled_map", "gaussian_weights",
           "tiled_denoise"]

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


def tile_boxes(height: int, width: int, tile: int, overlap: int) -> list[tuple[slice, slice]]:
    """(rows, cols) of every tile over a height x width plane, row by row."""
    return [(slice(top, min(top + tile, height)), slice(left, min(left + tile, width)))
            for top in tile_starts(height, tile, overlap) for left in tile_starts(width, tile, overlap)]


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


TileDenoise = Callable[[torch.Tensor, slice, slice], tuple[torch.Tensor, torch.Tensor]]


def gaussian_weights(height: int, width: int, var: float = 0.01) -> torch.Tensor:
    """[h,w] product of per-axis Gaussians, exp(-(x-mid)^2 / (W^2 * 2 var)) (StableSR, var 0.01)."""
    def axis(n):
        x = torch.arange(n, dtype=torch.float64)
        mid = (n - 1) / 2
        return torch.exp(-(x - mid) ** 2 / (n * n) / (2 * var)) / math.sqrt(2 * math.pi * var)
    return (axis(height)[:, None] * axis(width)[None, :]).float()


def tiled_denoise(denoise_tile: TileDenoise, x: torch.Tensor, tile: int, overlap: int,
                  var: float = 0.01) -> tuple[torch.Tensor, torch.Tensor]:
    """(x0, eps) for latents x [...,h,w], from tiles of `tile` latent pixels.

    denoise_tile(x_tile, rows, cols) returns the tile's (x0, eps); rows/cols
    locate the tile, so per-tile conditions (the LR structure) can be cropped.
    A tile at least as large as x runs once, exactly like the untiled call.
    """
    h, w = x.shape[-2:]
    if tile < 8 or not 0 <= overlap < tile:
        raise InputError(f"latent tile={tile}, overlap={overlap}; expected tile >= 8 and 0 <= overlap < tile")
    if tile >= h and tile >= w:
        return denoise_tile(x, slice(0, h), slice(0, w))
    x0_sum = torch.zeros_like(x)
    eps_sum = torch.zeros_like(x)
    weight_sum = x.new_zeros((h, w))
    for rows, cols in tile_boxes(h, w, tile, overlap):
        x0, eps = denoise_tile(x[..., rows, cols], rows, cols)
        weight = gaussian_weights(rows.stop - rows.start, cols.stop - cols.start, var).to(x)
        x0_sum[..., rows, cols] += weight * x0
        eps_sum[..., rows, cols] += weight * eps
        weight_sum[rows, cols] += weight
    return x0_sum / weight_sum, eps_sum / weight_sum
