"""The full diffusion graph over a video file, streamed segment by segment.

    Load -> Estimate Flow -> Upscale -> VAE encode -> Guided Sample -> Temporal Decode -> Refine -> Save

the same stages, defaults and shipped weights as `workflows/full_pipeline_default`,
but frames stream from the decoder through every stage to the encoder in
segments (pipeline/segments.py), so memory depends on the segment, window and
tile sizes only. With `seams="carried"` (one process) Guided Sample carries its
guidance anchor across segments (`Seam`), so the sampled latents are those of
one pass over the video; with `seams="independent"` (the distributed mode,
jobs.distributed) every segment is sampled on its own, with the same per-frame
noise, so any worker can take any segment. The outputs of overlapping frames
are crossfaded. Finished segments go to a cache
folder, so a cancelled or crashed run resumes; when a segment runs out of
memory its tiles (then windows) shrink and it runs again.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch

from ..diffusion.motion_guidance import MotionGuidance
from ..errors import InputError
from ..file_identity import file_identity
from ..progress import InnerReporter, Reporter, get_reporter
from ..speed import autocast, autocast_dtype, compile_forward, pick_device, use_channels_last
from .guided_sample import SampleSettings, Seam, sample_segment
from .memory_fallback import halve, retry_on_oom
from .segments import check_segmenting
from .upscale import upscale_frames
from .vae_codec import decode_latents, encode_frames

MIN_LATENT_TILE = 16
MIN_PIXEL_TILE = 64
SEAM_MODES = ("carried", "independent")


@dataclass(frozen=True)
class RestoreSettings:
    scale: int = 4
    segment: int = 16                 # frames per segment (memory bound); the last `segment_overlap` shared
    segment_overlap: int = 2
    sample: SampleSettings = field(default_factory=lambda: SampleSettings(steps=20, guidance=MotionGuidance(10.0)))
    flow_preset: str = "medium"       # DIS, on the LR frames
    upscale_tile_lr_px: int = 128     # the upscaler's full-frame activations at 1080p take GBs
    encode_tile_latent: int = 64
    decode_window: int = 5
    decode_window_overlap: int = 1
    decode_tile_latent: int = 64
    decode_tile_overlap_latent: int = 16
    fusion_w: float | None = None     # CFW weight (None: the VAE's default)
    color_fix: str = "wavelet"
    precision: str = "auto"           # autocast: fp16/bf16 on CUDA, bf16 on AMX CPUs, else float32 (speed.py)
    seams: str = "carried"            # "independent": segments sampled alone (Ray workers); see the module doc

    def __post_init__(self):
        if self.scale not in (2, 4):
            raise InputError(f"scale={self.scale!r}; expected 2 or 4")
        if self.seams not in SEAM_MODES:
            raise InputError(f"seams={self.seams!r}; expected one of {', '.join(SEAM_MODES)}")
        check_segmenting(self.segment, self.segment_overlap)
        if (self.seams == "carried" and self.segment > self.sample.window
                and self.segment_overlap >= self.sample.window):
            # The anchor for the next segment is the frame before it, which must lie in this segment's last window.
            raise InputError(f"segment_overlap={self.segment_overlap}; expected fewer frames than the sampling "
                             f"window ({self.sample.window})")
        autocast_dtype(torch.device("cpu"), self.precision)  # checks the name
        for name, low in (("upscale_tile_lr_px", MIN_PIXEL_TILE), ("encode_tile_latent", MIN_LATENT_TILE),
                          ("decode_tile_latent", MIN_LATENT_TILE)):
            if getattr(self, name) < low:
                raise InputError(f"{name}={getattr(self, name)}; expected at least {low}")


@dataclass
class RestoreModels:
    upscaler: torch.nn.Module
    diffusion: object                 # DiffusionModel
    vae: torch.nn.Module              # encodes the upscaled frames and decodes the samples
    refiner: torch.nn.Module
    files: dict = field(default_factory=dict)   # name -> file identity, for the cache key


def restore_model_paths(scale: int = 4, diffusion: str | None = None, vae: str | None = None,
                        upscaler: str | None = None, refiner: str | None = None) -> dict:
    """name -> the file load_restore_models reads for it (given, else shipped; None: none read)."""
    from ..checkpoints.shipped import default_upscaler_path, shipped_path
    return {"diffusion": diffusion or shipped_path("diffusion"),
            "vae": vae or (shipped_path("video_vae") if diffusion is None else None),
            "upscaler": upscaler or default_upscaler_path(scale), "refiner": refiner or shipped_path("refiner")}


def restore_model_files(paths: dict) -> dict:
    """name -> file identity of each file in `paths` (the cache key's part for the models)."""
    return {k: file_identity(p) for k, p in paths.items() if p is not None}


def load_restore_models(scale: int = 4, diffusion: str | None = None, vae: str | None = None,
                        upscaler: str | None = None, refiner: str | None = None, device: str = "cpu",
                        channels_last: bool = False, compile: bool = False) -> RestoreModels:
    """The models of the full graph: given files, else the shipped ones (as the default workflow),
    on `device` ("auto": CUDA when there is one), optionally channels-last and compiled."""
    from ..checkpoints import load_components
    from ..checkpoints.diffusion_loader import load_diffusion_model
    from ..checkpoints.shipped import load_default_upscaler, load_refiner, load_upscaler

    paths = restore_model_paths(scale, diffusion, vae, upscaler, refiner)
    model, own_vae = load_diffusion_model(paths["diffusion"])
    if paths["vae"] is not None:
        parts = load_components(paths["vae"], ("vae",))
        if "vae" not in parts:
            raise InputError(f"--vae '{paths['vae']}' holds no VAE")
        own_vae = parts["vae"]
    if own_vae is None:
        raise InputError(f"diffusion checkpoint '{paths['diffusion']}' has no VAE; give a VAE file too")
    up = load_upscaler(upscaler) if upscaler else load_default_upscaler(scale)
    models = RestoreModels(up, model, own_vae, load_refiner(paths["refiner"]), restore_model_files(paths))
    target = pick_device(device)
    for module in (models.upscaler, model.unet, models.vae, models.refiner):
        module.to(target)
        if channels_last:
            use_channels_last(module)
    if compile:
        compile_forward(model.unet)
    return models


def shrink(settings: RestoreSettings) -> RestoreSettings | None:
    """Next smaller pieces after running out of memory: all tiles halve, then the windows do."""
    tiles = dict(upscale_tile_lr_px=halve(settings.upscale_tile_lr_px, MIN_PIXEL_TILE),
                 encode_tile_latent=halve(settings.encode_tile_latent, MIN_LATENT_TILE),
                 decode_tile_latent=halve(settings.decode_tile_latent, MIN_LATENT_TILE))
    s = settings.sample
    tile = halve(s.tile_latent, MIN_LATENT_TILE)
    if any(getattr(settings, k) != v for k, v in tiles.items()) or tile != s.tile_latent:
        sample = dataclasses.replace(s, tile_latent=tile, tile_overlap_latent=min(s.tile_overlap_latent, tile // 2))
        overlap = min(settings.decode_tile_overlap_latent, tiles["decode_tile_latent"] // 4)
        return dataclasses.replace(settings, sample=sample, **tiles, decode_tile_overlap_latent=overlap)
    # The next segment's anchor frame must stay inside the last sampling window: window > segment_overlap.
    window = max(2, settings.segment_overlap + 1, s.window - 2)
    decode_window = max(2, settings.decode_window - 2)
    if (window, decode_window) == (s.window, settings.decode_window):
        return None
    sample = dataclasses.replace(s, window=window, window_overlap=min(s.window_overlap, window - 1))
    return dataclasses.replace(settings, sample=sample, decode_window=decode_window,
                               decode_window_overlap=min(settings.decode_window_overlap, decode_window - 1))


def restore_segment(lr: torch.Tensor, lead: torch.Tensor | None, models: RestoreModels, settings: RestoreSettings,
                    seam: Seam, reporter: Reporter | None = None) -> tuple[torch.Tensor, dict]:
    """Frames [n,3,h,w] (0..1) -> (restored [n,3,sh,sw], the state for the next segment: its seam anchor);
    `lead` is the frame before them (for the seam's flow)."""
    reporter = InnerReporter(get_reporter(reporter))
    with autocast(next(models.diffusion.unet.parameters()).device, settings.precision):
        return _restore_segment(lr, lead, models, settings, seam, reporter)


def _restore_segment(lr, lead, models: RestoreModels, settings: RestoreSettings, seam: Seam, reporter: Reporter):
    from ..flow import estimate_flow
    from ..models.refiner import refine

    model = models.diffusion
    flow_frames = lr if lead is None or not seam.anchors else torch.cat([lead[None], lr])
    flow = estimate_flow(flow_frames, "dis", preset=settings.flow_preset) if flow_frames.shape[0] > 1 else None
    up = upscale_frames(lr, models.upscaler, settings.scale, tile_lr_px=settings.upscale_tile_lr_px,
                        reporter=reporter)
    z = encode_frames(models.vae, up, tile_latent=settings.encode_tile_latent, reporter=reporter) * model.latent_scale
    sample, anchors = sample_segment(z, model, settings.sample, flow, reporter, seam)
    decoded = decode_latents(models.vae, sample / model.latent_scale, upscaled=up, w=settings.fusion_w,
                             window=settings.decode_window, window_overlap=settings.decode_window_overlap,
                             tile_latent=settings.decode_tile_latent,
                             tile_overlap_latent=settings.decode_tile_overlap_latent,
                             reporter=reporter)
    return refine(up, decoded, models.refiner, color_fix=settings.color_fix).float(), seam_state(anchors)


def restore_segment_fitting(lr: torch.Tensor, lead: torch.Tensor | None, models: RestoreModels,
                            settings: RestoreSettings, state: dict, first_frame: int, export: int | None,
                            reporter: Reporter | None = None) -> tuple[tuple[torch.Tensor, dict], RestoreSettings]:
    """``restore_segment`` of the segment starting at video frame ``first_frame``, its Seam made from the
    previous segment's ``state``, shrinking the pieces after running out of memory:
    ((frames, state for the next segment), the settings that fitted)."""
    def attempt(s: RestoreSettings):
        return restore_segment(lr, lead, models, s, segment_seam(s, state, first_frame, export), reporter)
    return retry_on_oom(attempt, settings, shrink, f"segment at frame {first_frame}", reporter)


def segment_seam(settings: RestoreSettings, state: dict, first_frame: int, export: int | None) -> Seam:
    """The Seam a segment samples with: carried from the previous segment, or its own (independent)."""
    if settings.seams == "independent":
        return Seam(first_frame=first_frame)
    return seam_from_state(state, first_frame, export)


def seam_state(anchors: dict) -> dict:
    """A seam anchor ({step: latent}) as a segment state (cached between segments by the job)."""
    return {f"anchor.{step}": latent for step, latent in anchors.items()}


def seam_from_state(state: dict, first_frame: int, export: int | None) -> Seam:
    anchors = {int(k.split(".", 1)[1]): v for k, v in state.items() if k.startswith("anchor.")}
    return Seam(anchors=anchors, export_frame=export, first_frame=first_frame)
