"""The library's front door: everything the node pack (or any other caller) uses, from one module.

Clip-level stages take loaded models and a settings object (checked when it was made) and run the clip
in memory; when memory runs out they retry with smaller tiles, then shorter windows, saying so. This is
the one place that retry happens for in-memory work (streamed jobs retry window by window inside the
pipeline). Weights are only ever read by vsr_core.checkpoints, whose loaders are exported here; the
file-to-file jobs (upscale_file, relay_file, restore_file) take the same settings objects as the command
line.
"""
from __future__ import annotations

import dataclasses

import torch

# -- errors, progress, number checks, settings declarations
from .errors import CheckpointError, InputError, Interrupted, OutputError, VSRError  # noqa: F401
from .numbers import check_finite_setting  # noqa: F401
from .progress import Reporter, TerminalReporter, get_reporter  # noqa: F401
from .settings import leaf, leaves, value_type, with_values  # noqa: F401

# -- settings of each job and stage
from .checkpoints.restore_models import RestoreModels, RestoreModelSettings  # noqa: F401
from .diffusion.motion_guidance import RULES as GUIDANCE_RULES, MotionGuidance  # noqa: F401
from .jobs.job_settings import JobSettings  # noqa: F401
from .diffusion.samplers import SAMPLERS, describe_samplers  # noqa: F401
from .pipeline.guided_sample import SampleSettings
from .pipeline.restore_video import RestoreSettings  # noqa: F401
from .pipeline.stage_settings import DecodeSettings, RefineSettings
from .pipeline.upscale_settings import TILE_PX, UpscaleSettings  # noqa: F401

# -- loaders (vsr_core.checkpoints reads every weight file)
from .checkpoints.detail_loader import DEFAULT_DETAIL, detail_identity, load_detail_model  # noqa: F401
from .checkpoints.diffusion_loader import load_diffusion_model, load_vae  # noqa: F401
from .checkpoints.shipped import (clean_upscaler_path, default_upscaler_path, has_shipped,  # noqa: F401
                                  load_refiner, load_upscaler, shipped_path)

# -- frames, video files, audio, identities of files
from .file_identity import file_identity, source_identity  # noqa: F401
from .ops.colorfix import COLOR_FIX_METHODS, color_fix  # noqa: F401
from .ops.frames import (check_finite, check_image_batch, float_to_uint8, tchw_to_thwc,  # noqa: F401
                         thwc_to_tchw, uint8_to_float)
from .safe_files import resolve  # noqa: F401
from .video import (AudioClip, AudioSegment, AudioStreamRef, LoadOptions, VideoWriter,  # noqa: F401
                    decode_audio, open_video, to_fraction)
from .video.image_sources import IMAGE_EXTENSIONS  # noqa: F401
from .video.naming import check_output_prefix, next_numbered_path  # noqa: F401
from .video.reader import VIDEO_EXTENSIONS  # noqa: F401
from .video.timeline import select_indices  # noqa: F401

# -- flow, keyframes, the diffusion model's adapter for other denoisers
from .diffusion.model import DiffusionModel, SigmaDenoiser  # noqa: F401
from .flow import (DEFAULT_PRESET as DIS_DEFAULT_PRESET, DIS_PRESETS, OCCLUSION_CONVENTIONS,  # noqa: F401
                   RAFT_INPUT_MODES, estimate_flow, flow_preview)
from .pipeline.detail import DETAIL_TILE_LR_PX, detail_frames as detail_upscale  # noqa: F401
from .pipeline.relay import parse_indices, pick_keyframes, pick_keyframes_stream, relay_frames  # noqa: F401

# -- memory, and the file-to-file jobs
from .jobs.relay import folder_keyframes, relay_file, save_keyframes  # noqa: F401
from .jobs.restore import restore_file  # noqa: F401
from .jobs.upscale import upscale_file  # noqa: F401
from .models.refiner import refine as _refine
from .ops.resize import resize_frames
from .pipeline.memory_fallback import retry_on_oom, smaller_pieces
from .pipeline.memory_plan import CLI_FLAGS, FreeMemory, check_output_size, output_batch_bytes, plan_upscale
from .pipeline.stabilize import stabilize_with_flow
from .pipeline.upscale import upscale_frames
from .pipeline.vae_codec import decode_latents, encode_frames

MIN_UPSCALE_TILE_PX = 64        # where the in-memory upscale stops halving its tile


def upscale(frames: torch.Tensor, model, settings: UpscaleSettings = UpscaleSettings(),
            free: FreeMemory | None = None, flags: tuple[str, ...] = CLI_FLAGS,
            reporter: Reporter | None = None) -> torch.Tensor:
    """The learned upscaler over a clip [T,3,h,w] (0..1) -> [T,3,h*scale,w*scale]. Tile and window are first
    lowered to fit ``free`` memory (default: what is free now on the model's device; the clip's output is
    counted too), then halved whenever memory runs out. ``flags``: how the caller names tile, window and
    scale in what is said."""
    reporter = get_reporter(reporter)
    h, w = frames.shape[-2:]
    check_output_size(h, w, settings.scale, flags)
    device = next(model.parameters()).device
    plan = plan_upscale(h, w, settings.scale, settings.window, settings.window_overlap, settings.upscaler_tile_px,
                        free or FreeMemory.of(device), extra_ram=output_batch_bytes(frames, settings.scale),
                        flags=flags)
    reporter.log(plan.describe(settings.upscaler_tile_px, settings.window, flags))
    # whole frames (tile 0) can still shrink on out-of-memory: they start as one tile of the frame's size
    pieces = dict(tile_px=plan.tile or max(h, w), window=plan.window, window_overlap=plan.overlap)

    def attempt(p):
        return upscale_frames(frames, model, dataclasses.replace(settings, **p), reporter)

    def shrink(p):          # the upscaler's windows overlap by less than half
        p = smaller_pieces(p, min_tile=MIN_UPSCALE_TILE_PX)
        return p and {**p, "window_overlap": min(p["window_overlap"], (p["window"] - 1) // 2)}
    return retry_on_oom(attempt, pieces, shrink, "Upscale", reporter)[0]


def stabilize_upscaled(upscaled: torch.Tensor, lr: torch.Tensor, scale: int, strength: float,
                       reporter: Reporter | None = None) -> torch.Tensor:
    """Another model's per-frame upscale [T,3,H',W'] brought to ``scale`` x the LR clip [T,3,h,w] and steadied
    by flow (pipeline.stabilize) with ``strength``."""
    resized = resize_frames(upscaled, lr.shape[-2] * scale, lr.shape[-1] * scale)
    return stabilize_with_flow(resized, lr, strength=strength, reporter=reporter)


def relay(lr: torch.Tensor, keyframes: torch.Tensor, indices, model, settings: UpscaleSettings = UpscaleSettings(),
          detect_cuts: bool = True, reporter: Reporter | None = None) -> torch.Tensor:
    """The learned upscaler over an LR clip plus the detail of HR ``keyframes`` at frames ``indices``, carried
    by motion (pipeline.relay.relay_frames); the tile halves whenever memory runs out."""
    reporter = get_reporter(reporter)

    def attempt(p):
        return relay_frames(lr, keyframes, indices, model, dataclasses.replace(settings, **p), detect_cuts,
                            reporter)
    # whole frames (tile 0) can still shrink: they start as one tile of the frame's size
    return retry_on_oom(attempt, {"tile_px": settings.upscaler_tile_px or max(lr.shape[-2:])},
                        lambda p: smaller_pieces(p, min_tile=MIN_UPSCALE_TILE_PX), "Relay Detail", reporter)[0]


def encode(vae, frames: torch.Tensor, reporter: Reporter | None = None) -> torch.Tensor:
    """Frames [T,3,H,W] (0..1) -> the VAE's unscaled latents [T,C,h,w], in tiles."""
    return encode_frames(vae, frames, reporter=reporter)


def with_conditioning(model, context: torch.Tensor | None):
    """A DiffusionModel with ``context`` ([1,L,D] text embedding) in place of its empty prompt."""
    if not isinstance(model, DiffusionModel):
        raise InputError(f"model is a {type(model).__name__}; expected a diffusion model from "
                         f"load_diffusion_model (or a ComfyUI MODEL, adapted with SigmaDenoiser)")
    if context is None:
        return model
    return DiffusionModel(model.unet, context, model.prediction, model.betas, model.latent_scale)


def guided_sample(latents: torch.Tensor, model, settings: SampleSettings = SampleSettings(), flow=None,
                  reporter: Reporter | None = None) -> torch.Tensor:
    """Motion-guided diffusion over a clip's unscaled latents [T,C,h,w] -> restored unscaled latents (the
    ComfyUI LATENT convention); tiles, then windows, shrink whenever memory runs out."""
    from .pipeline.guided_sample import guided_sample as sample
    reporter = get_reporter(reporter)
    scaled = latents.float() * model.latent_scale

    def attempt(pieces):
        return sample(scaled, model, dataclasses.replace(settings, **pieces), flow=flow, reporter=reporter)

    pieces = dict(tile_latent=settings.tile_latent, tile_overlap_latent=settings.tile_overlap_latent,
                  window=settings.window, window_overlap=settings.window_overlap)
    out, _ = retry_on_oom(attempt, pieces, smaller_pieces, "Guided Sample", reporter)
    return out / model.latent_scale


def temporal_decode(vae, latents: torch.Tensor, settings: DecodeSettings = DecodeSettings(),
                    upscaled: torch.Tensor | None = None, size: tuple[int, int] | None = None,
                    reporter: Reporter | None = None) -> torch.Tensor:
    """Unscaled latents [T,C,h,w] -> frames [T,3,H,W] with the VAE's temporal layers and CFW fusion of
    ``upscaled`` when it has them (cropped to ``size``); tiles, then windows, shrink whenever memory runs out."""
    reporter = get_reporter(reporter)

    def attempt(pieces):
        return decode_latents(vae, latents, upscaled=upscaled, w=settings.cfw_weight, size=size, reporter=reporter,
                              **pieces)
    return retry_on_oom(attempt, settings.pieces(), smaller_pieces, "Temporal Decode", reporter)[0]


def refine(upscaled: torch.Tensor, decoded: torch.Tensor, refiner=None,
           settings: RefineSettings = RefineSettings()) -> torch.Tensor:
    """SATeCo's refiner on the upscaler's and the diffusion path's frames (``refiner`` None: the fixed blend
    with ``settings.blend``), then the colour fix."""
    return _refine(upscaled, decoded, refiner, w=settings.blend, color_fix=settings.color_fix)


__all__ = sorted(name for name in dir() if not name.startswith("_") and name not in ("annotations", "torch",
                                                                                    "dataclasses"))
