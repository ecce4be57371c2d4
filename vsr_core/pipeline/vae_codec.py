"""Frames <-> latents for whole clips: padding, batching, tiling, temporal windows.

Frames are float [T,3,H,W] in 0..1; latents are the VAE's unscaled means
[T,C,H/8,W/8] (ComfyUI's LATENT convention). Sizes that are not multiples of
the VAE's factor are padded by edge replication on encode and cropped back on
decode. A temporal (MGLD) decoder sees overlapping windows of frames, which
are crossfaded; per-frame decoders run in small batches. Memory depends on the
window, batch and tile sizes.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import InputError
from ..ops.frames import check_frames
from ..ops.windows import WindowBlender, plan_windows
from ..progress import Reporter, get_reporter
from .vae_tiles import tiled_decode, tiled_encode


def padded_size(height: int, width: int, factor: int) -> tuple[int, int]:
    return -(-height // factor) * factor, -(-width // factor) * factor


def pad_frames(frames: torch.Tensor, factor: int) -> torch.Tensor:
    h, w = frames.shape[-2:]
    ph, pw = padded_size(h, w, factor)
    return frames if (ph, pw) == (h, w) else F.pad(frames, (0, pw - w, 0, ph - h), mode="replicate")


@torch.no_grad()
def encode_frames(vae, frames: torch.Tensor, tile_latent: int = 64, tile_overlap_latent: int = 8, batch: int = 4,
                  reporter: Reporter | None = None) -> torch.Tensor:
    """Frames in 0..1 -> unscaled latent means, `batch` frames at a time, in tiles.

    Tiles are in latent cells (64 = 512 pixels for SD's VAE), like
    decode_latents': the encoder's mid-block attention spans a whole tile, so its
    memory grows with the square of the tile's latent area, whatever the VAE's factor.
    """
    check_frames(frames, "frames")
    reporter = get_reporter(reporter)
    f = vae.downsample_factor
    param = next(vae.parameters())
    out = []
    reporter.start(frames.shape[0], "VAE encode")
    for i in range(0, frames.shape[0], batch):
        reporter.check_interrupt()
        x = pad_frames(frames[i:i + batch], f).to(param) * 2 - 1
        z = tiled_encode(vae, x, tile_size=tile_latent * f, overlap=tile_overlap_latent * f)
        out.append(z.float().cpu())
        reporter.update(x.shape[0])
    return torch.cat(out)


def is_temporal(vae) -> bool:
    """Whether the decoder mixes frames (MGLD's video VAE) and so needs whole windows (the VAE says so)."""
    return bool(getattr(vae, "temporal_decoder", False))


def uses_lr_features(vae) -> bool:
    """Whether the decoder fuses encoder features of the LR frames (StableSR/MGLD CFW; the VAE says so)."""
    return bool(getattr(vae, "fuses_lr_features", False))


@torch.no_grad()
def decode_latents(vae, latents: torch.Tensor, upscaled: torch.Tensor | None = None, w: float | None = None,
                   size: tuple[int, int] | None = None, window: int = 5, window_overlap: int = 1,
                   tile_latent: int = 64, tile_overlap_latent: int = 16,
                   reporter: Reporter | None = None) -> torch.Tensor:
    """Unscaled latents [T,C,h,w] -> frames [T,3,H,W] in 0..1.

    upscaled: the upscaled LR frames the latents were sampled from, at the
    output size; a CFW decoder fuses their encoder features with weight `w`
    (None: the model's default). size: (H, W) to crop to (default: the
    upscaled' size, else the full decoded size).
    """
    if latents.dim() != 4 or latents.shape[0] < 1:
        raise InputError(f"latent has shape {tuple(latents.shape)}; expected [frames, C, h, w]")
    if not torch.isfinite(latents).all():
        raise InputError("latent contains NaN or infinite values")
    reporter = get_reporter(reporter)
    t_frames = latents.shape[0]
    f = vae.downsample_factor
    param = next(vae.parameters())  # frames go to the VAE's device and dtype, results come back to the CPU
    if upscaled is not None:
        check_frames(upscaled, "upscaled frames")
        if upscaled.shape[0] != t_frames:
            raise InputError(f"upscaled frames: {upscaled.shape[0]} frames for {t_frames} latent frames; "
                             f"expected the same clip")
        want = padded_size(*upscaled.shape[-2:], f)
        if want != (latents.shape[-2] * f, latents.shape[-1] * f):
            raise InputError(f"upscaled frames are {upscaled.shape[-1]}x{upscaled.shape[-2]} but the latent "
                             f"decodes to {latents.shape[-1] * f}x{latents.shape[-2] * f}; expected the frames "
                             f"the latent was encoded from")
        size = size or tuple(upscaled.shape[-2:])
    temporal = is_temporal(vae)
    fuse = upscaled is not None and uses_lr_features(vae)
    windows = plan_windows(t_frames, window if temporal else 1, window_overlap if temporal and window > 1 else 0)
    blender = WindowBlender(windows)
    out = None
    reporter.start(len(windows), "VAE decode")
    for k, (a, b) in enumerate(windows):
        reporter.check_interrupt()
        kwargs = {}
        if temporal:
            kwargs["num_frames"] = b - a
        if fuse:
            kwargs["upscaled_image"] = pad_frames(upscaled[a:b], f).to(param) * 2 - 1
            if w is not None:
                kwargs["w"] = w
        images = tiled_decode(vae, latents[a:b].to(param), tile_size=tile_latent, overlap=tile_overlap_latent,
                              **kwargs)
        images = ((images.float().cpu() + 1) / 2).clamp(0, 1)
        if out is None:
            out = torch.empty((t_frames,) + tuple(images.shape[1:]))
        for i, frame in blender.add(k, images):
            out[i] = frame
        reporter.update(1)
    if size is not None:
        out = out[..., :size[0], :size[1]]
    return out
