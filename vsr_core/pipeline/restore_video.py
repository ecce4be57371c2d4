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
from dataclasses import dataclass

import torch

from ..checkpoints.restore_models import RestoreModels
from ..diffusion.motion_guidance import MotionGuidance
from ..errors import InputError
from ..flow.dis import DEFAULT_PRESET as DIS_DEFAULT_PRESET, PRESETS as DIS_PRESETS
from ..progress import InnerReporter, Reporter, get_reporter
from ..settings import check_settings, group, setting
from ..speed import PRECISIONS, autocast
from .guided_sample import SampleSettings, Seam, sample_segment
from .memory_fallback import halve, retry_on_oom
from .segments import check_segmenting
from .upscale import upscale_frames
from .stage_settings import DecodeSettings, RefineSettings
from .upscale_settings import TILE_PX, UpscaleSettings
from .vae_codec import decode_latents, encode_frames

MIN_LATENT_TILE = 16
MIN_PIXEL_TILE = 64
SEAM_MODES = ("carried", "independent")


@dataclass(frozen=True)
class RestoreSettings:
    """The restore job's settings (`vsr restore`, Restore Video (VSR, streaming)): the stages and defaults of
    workflows/full_pipeline_default, one group per stage's node (tests/test_restore_graph.py holds the two
    equal, settings and frames)."""
    scale: int = setting(4, "output size: x4 or x2 the input", choices=(4, 2))
    segment: int = setting(16, "frames per segment: the memory bound, not the video's length; a cancel loses "
                               "at most one segment", min=2, max=256)
    segment_overlap: int = setting(2, "frames shared by neighbouring segments and cross-faded", min=0, max=16)
    tile_latent: int = setting(64, "latent cells per tile (x8 pixels) for sampling, VAE encode and decode; "
                                   "sampling tiles overlap by half, decoding tiles by a quarter (at most 16)",
                               min=MIN_LATENT_TILE, max=512, step=8, old_flags=("--tile",))
    sample: SampleSettings = group(lambda: SampleSettings(steps=20, guidance=MotionGuidance(10.0)))
    flow_preset: str = setting(DIS_DEFAULT_PRESET, "DIS preset of the guidance's flow, on the LR frames",
                               choices=tuple(sorted(DIS_PRESETS)), cli=False)
    upscale_tile_px: int = setting(TILE_PX, "the upscaler's tile in input pixels (memory grows with its area)",
                                   min=MIN_PIXEL_TILE, max=4096, step=16, old_flags=("--upscale-tile",))
    decode: DecodeSettings = group(DecodeSettings)
    refine: RefineSettings = group(lambda: RefineSettings(color_fix="wavelet"))
    precision: str = setting("auto", "autocast precision (auto: fp16/bf16 on CUDA, bf16 on CPUs with "
                                     "AMX/AVX512-BF16, else fp32)", choices=PRECISIONS)
    seams: str | None = setting(None, "carried: guidance carried from segment to segment (one process, the "
                                      "default); independent: each segment sampled alone (the mode of "
                                      "--workers, for any N)", choices=SEAM_MODES)

    def __post_init__(self):
        check_settings(self)
        check_segmenting(self.segment, self.segment_overlap)
        tile = self.tile_latent     # one latent tile for sampling, encode and decode: the stages' own follow it
        if (self.sample.tile_latent, self.sample.tile_overlap_latent) != (tile, tile // 2):
            object.__setattr__(self, "sample", dataclasses.replace(self.sample, tile_latent=tile,
                                                                  tile_overlap_latent=tile // 2))
        if (self.decode.tile_latent, self.decode.tile_overlap_latent) != (tile, min(16, tile // 4)):
            object.__setattr__(self, "decode", dataclasses.replace(self.decode, tile_latent=tile,
                                                                  tile_overlap_latent=min(16, tile // 4)))
        if (self.seams != "independent" and self.segment > self.sample.window
                and self.segment_overlap >= self.sample.window):
            # The anchor for the next segment is the frame before it, which must lie in this segment's last window.
            raise InputError(f"segment_overlap={self.segment_overlap}; expected fewer frames than the sampling "
                             f"window ({self.sample.window})")

    @property
    def upscale(self) -> UpscaleSettings:
        """The upscale stage's settings: the Upscale node's defaults at this scale and tile."""
        return UpscaleSettings(scale=self.scale, tile_px=self.upscale_tile_px)

    def for_workers(self, workers: int) -> "RestoreSettings":
        """Seams chosen (carried in one process, independent on Ray workers) where none was asked for."""
        if self.seams is not None:
            return self
        return dataclasses.replace(self, seams="independent" if workers else "carried")


def shrink(settings: RestoreSettings) -> RestoreSettings | None:
    """Next smaller pieces after running out of memory: all tiles halve, then the windows do."""
    tiles = dict(upscale_tile_px=halve(settings.upscale_tile_px, MIN_PIXEL_TILE),
                 tile_latent=halve(settings.tile_latent, MIN_LATENT_TILE))
    if any(getattr(settings, k) != v for k, v in tiles.items()):
        return dataclasses.replace(settings, **tiles)
    # The next segment's anchor frame must stay inside the last sampling window: window > segment_overlap.
    s, d = settings.sample, settings.decode
    window = max(2, settings.segment_overlap + 1, s.window - 2)
    decode_window = max(2, d.window - 2)
    if (window, decode_window) == (s.window, d.window):
        return None
    sample = dataclasses.replace(s, window=window, window_overlap=min(s.window_overlap, window - 1))
    decode = dataclasses.replace(d, window=decode_window, window_overlap=min(d.window_overlap, decode_window - 1))
    return dataclasses.replace(settings, sample=sample, decode=decode)


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
    up = upscale_frames(lr, models.upscaler, settings.upscale, reporter=reporter)
    z = encode_frames(models.vae, up, tile_latent=settings.tile_latent, reporter=reporter) * model.latent_scale
    sample, anchors = sample_segment(z, model, settings.sample, flow, reporter, seam)
    decoded = decode_latents(models.vae, sample / model.latent_scale, upscaled=up, w=settings.decode.cfw_weight,
                             reporter=reporter, **settings.decode.pieces())
    refined = refine(up, decoded, models.refiner, w=settings.refine.blend, color_fix=settings.refine.color_fix)
    return refined.float(), seam_state(anchors)


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
