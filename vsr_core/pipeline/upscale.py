"""The learned video upscaler over clips: in memory (the Upscale node) and streamed (the file job),
window by window so memory depends on the window and tile size, never on the
video's length or resolution.

- ``upscale_frames(frames, model, settings)``: overlapping temporal windows
  (cross-faded seams) and, for large frames, overlapping spatial tiles
  (ops.tiling); ``settings`` is the job's UpscaleSettings (checked when made).
- ``upscale_segments`` / ``stream_upscale``: the same over a stream of chunks,
  optionally stabilised (pipeline.stabilize), resumable, or on Ray workers.
"""
from __future__ import annotations

from typing import Iterable, Iterator

import torch
import torch.nn.functional as F

from ..checkpoints.shipped import has_default_upscaler
from ..flow.dis import DISFlow
from ..flow.pairs import PairFlows
from ..models.upscaler import FLOW_PRESET, MIN_SIDE
from ..ops.frames import check_frames
from ..ops.tiling import tiled_map
from ..progress import PieceProgress, Reporter, get_reporter
from ..speed import autocast, autocast_dtype, use_channels_last
from .cleaning import read_level
from .precision_probe import choose_cpu_precision
from .memory_fallback import retry_on_oom, smaller_pieces
from .segments import run_segments, run_segments_in_parallel
from .stabilize import FlowStabilizer
from .upscale_settings import UpscaleSettings, check_model_scale


def default_method() -> str:
    """'learned' when the shipped weights are installed, else 'bicubic'."""
    return "learned" if has_default_upscaler(4) else "bicubic"


# ---------------------------------------------------------------- one window
@torch.inference_mode()
def _run_window(lr: torch.Tensor, model, flows: tuple[torch.Tensor, torch.Tensor] | None, tile_px: int,
                tile_overlap_px: int, precision: str = "fp32", progress: Reporter | None = None,
                level: torch.Tensor | None = None) -> torch.Tensor:
    """One temporal window [n,3,h,w] -> [n,3,sh,sw] (model.scale), in spatial tiles of ``tile_px``
    (0: whole frames) blended linearly across their overlaps (ops.tiling.tiled_map).

    ``flows``: (forward, backward) [n-1,2,h,w] between its frames; None runs frame by frame.
    ``precision``: autocast (vsr_core.speed; "auto" is bf16 on CPUs with AMX/AVX512-BF16). ``progress``
    hears of each finished tile (progress.PieceProgress). ``level``: the clip's degradation level
    (pipeline.cleaning.clip_level), the same for every tile."""
    p = next(model.parameters())
    given = {} if level is None else {"level": level.to(p.device)}
    n, _, h, w = lr.shape
    temporal = flows is not None and n > 1
    ff, fb = flows if temporal else (None, None)

    def run(x, ff_tile, fb_tile):
        with autocast(p.device, precision):
            if temporal:
                out = model(x[None].to(p), ff_tile[None].to(p), fb_tile[None].to(p), temporal=True, **given)
            else:
                out = model(x[None].to(p), temporal=False, **given)
        return out[0].float().cpu()

    tile = tile_px or max(h, w)
    return tiled_map(run, [lr, ff, fb], tile=tile, overlap=min(tile_overlap_px, tile - 1),
                     out_scale=model.scale, blend="linear", margin=0.0, reporter=progress).clamp_(0, 1)


def _rescale_output(y: torch.Tensor, model_scale: int, scale: int) -> torch.Tensor:
    if model_scale == scale:
        return y
    h, w = y.shape[-2:]
    f = scale / model_scale
    return F.interpolate(y, size=(round(h * f), round(w * f)), mode="bicubic", align_corners=False,
                         antialias=True).clamp_(0, 1)


def window_tiles(tile_px: int, tile_overlap_px: int, lr: torch.Tensor) -> dict:
    """A window's tile settings: the tile (0: whole frames) at most the frame's longer side, so that running
    out of memory can halve it from there."""
    side = max(lr.shape[-2:])
    return {"tile_px": min(tile_px or side, side), "tile_overlap_px": tile_overlap_px}


def upscale_window(lr: torch.Tensor, first_frame: int, model, pair_flows, temporal: bool, tiles: dict,
                   precision: str, scale: int, progress: Reporter | None = None,
                   level: torch.Tensor | None = None) -> torch.Tensor:
    """One window [n,3,h,w] starting at video frame ``first_frame`` -> [n,3,sh,sw] at ``scale``: flow between
    its frames (``pair_flows``, a flow.pairs.PairFlows, shares pairs across windows), the network, x2 resampling.
    The single-process job and the Ray workers both run this."""
    flows = pair_flows.window(first_frame, lr) if temporal and len(lr) > 1 else None
    y = _run_window(lr, model, flows, tiles["tile_px"], tiles["tile_overlap_px"], precision, progress, level)
    return _rescale_output(y, model.scale, scale)


# ---------------------------------------------------------------- streaming
def upscale_segments(chunks: Iterable[torch.Tensor], model, settings: UpscaleSettings = UpscaleSettings(),
                     reporter: Reporter | None = None, resume=None, stabilizer_state: dict | None = None,
                     retry_oom: bool = False, pool=None, flow_preset: str = FLOW_PRESET) -> Iterator[tuple]:
    """Upscale a stream of LR chunks [n,3,h,w]; yield (segment, HR frames [n,3,sH,sW], stabiliser state).

    Windows of ``settings.window`` frames overlap by ``settings.window_overlap`` frames; outputs in the
    overlap are cross-faded linearly, so there is no jump at a seam, and every
    frame except the first/last few sees context on both sides. At most
    one window of LR frames and one of outputs are held in memory.
    ``settings.stabilize`` > 0 additionally runs ``FlowStabilizer(strength=stabilize)``
    on the outputs (lower warping error; see ``stabilize_with_flow``).
    ``resume`` (pipeline.segments.Resume) and ``stabilizer_state`` continue a
    job from its cache. ``retry_oom``: a window that runs out of memory is
    retried with halved tiles (the file job; in memory, vsr_core.api retries the
    whole clip, shrinking tiles and then windows). ``settings.precision``:
    autocast of the network (vsr_core.speed: "auto" is bf16 on CPUs with AMX or
    AVX512-BF16 and on CUDA, float32 elsewhere; "fp32" for exact float32).
    ``pool`` (jobs.distributed.RayPool): windows run on its workers, a few in
    flight, and come back in order (the stabiliser stays here). ``settings.clean``: "auto" or 0..1
    (pipeline.cleaning), its level read once from the first chunk (frame 0 on: a resumed job reads through
    the finished frames). The settings were checked when made and the model's scale by the caller
    (check_model_scale), once per job.
    """
    precision, window, scale = settings.precision, settings.window, settings.scale
    if precision == "auto" and next(model.parameters()).device.type == "cpu":
        choose_cpu_precision(model)     # bf16 or fp32 on this CPU: timed once, then cached
    if autocast_dtype(next(model.parameters()).device, precision) is not None:
        use_channels_last(model)    # oneDNN's reduced-precision convolutions run NHWC (2.0 vs 2.6 s a window here)
    rep = get_reporter(reporter)
    pair_flows = PairFlows(DISFlow(flow_preset), keep=2 * window)   # shared by windows and stabiliser
    stabilizer = FlowStabilizer(settings.stabilize, flow_preset, pair_flows=pair_flows) \
        if settings.stabilize > 0 else None
    if stabilizer is not None and stabilizer_state:
        stabilizer.set_state(stabilizer_state)
    skip = resume.first_frame if resume is not None else 0
    lr_queue: list[torch.Tensor] = []      # LR frames whose outputs are not yet out (for the stabiliser)
    overlap = settings.window_overlap if window > 1 else 0
    clip: dict = {}                        # the clip's degradation level, once read

    def checked(chunks):
        seen = 0
        for chunk in chunks:
            check_frames(chunk, "frames", MIN_SIDE)
            if stabilizer is not None:
                lr_queue.extend(chunk[max(0, skip - seen):].unbind(0))
            seen += len(chunk)
            yield chunk

    current: dict = {}                     # tile settings that fit in memory, kept for later windows

    def process(lr, lead, state, export, first_frame):
        if not current:
            current.update(window_tiles(settings.upscaler_tile_px, settings.tile_overlap_px, lr))

        def attempt(tiles):     # the window's new frames (the rest were counted with the window before)
            progress = PieceProgress(rep, max(len(lr) - (overlap if first_frame else 0), 1))
            return upscale_window(lr, first_frame, model, pair_flows, settings.temporal, tiles, precision, scale,
                                  progress, clip["level"])
        if not retry_oom:
            return attempt(current), {}
        y, fitted = retry_on_oom(attempt, dict(current), lambda p: smaller_pieces(p, min_tile=16),
                                 f"upscale window at frame {first_frame}", rep)
        current.update(fitted)
        return y, {}

    chunks = read_level(checked(chunks), model, settings.clean, clip, rep, pair_flows)
    if pool is None:
        segments = run_segments(chunks, process, window, overlap, rep, resume)
    else:
        segments = run_segments_in_parallel(chunks, lambda s: pool.submit(s, clip["level"]), pool.collect, window,
                                            overlap, rep, resume, in_flight=2 * len(pool.actors))
    for segment in segments:
        y = segment.frames
        if stabilizer is not None:
            lr = torch.stack(lr_queue[:len(y)])
            del lr_queue[:len(y)]
            y = stabilizer(y, lr, first_index=segment.first_frame)
        yield segment, y, (stabilizer.get_state() if stabilizer is not None else {})


def stream_upscale(chunks: Iterable[torch.Tensor], model, settings: UpscaleSettings = UpscaleSettings(),
                   reporter: Reporter | None = None) -> Iterator[torch.Tensor]:
    """``upscale_segments`` yielding only the HR frames [n,3,sH,sW] (float 0..1), in order."""
    check_model_scale(settings.scale, model.scale)
    for _, y, _ in upscale_segments(chunks, model, settings, reporter):
        yield y


def upscale_frames(frames: torch.Tensor, model, settings: UpscaleSettings = UpscaleSettings(),
                   reporter: Reporter | None = None) -> torch.Tensor:
    """Learned video upscaling of float frames [T,3,H,W] in 0..1 -> [T,3,sH,sW].

    ``model``: a loaded VideoUpscaler (vsr_core.checkpoints). ``settings.method`` 'learned-per-frame'
    runs it frame by frame (no propagation). ``settings.stabilize`` (0..1, default
    off) adds flow-guided temporal stabilisation of the output. Frame count is
    preserved for any T; memory is bounded by the window and the tile.
    """
    check_frames(frames, "frames", MIN_SIDE)
    check_model_scale(settings.scale, model.scale)
    rep = get_reporter(reporter)
    rep.start(frames.shape[0], f"upscale x{settings.scale}")
    return torch.cat([y for _, y, _ in upscale_segments([frames], model, settings, rep)])
