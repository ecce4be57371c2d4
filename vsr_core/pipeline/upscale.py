"""The learned video upscaler over clips: in memory (the Upscale node) and streamed (the file job),
window by window so memory depends on the window and tile size, never on the
video's length or resolution.

- ``upscale_frames(frames, model, scale, window, overlap, ...)``: overlapping
  temporal windows (cross-faded seams) and, for large frames, overlapping
  spatial tiles (ops.tiling).
- ``upscale_segments`` / ``stream_upscale``: the same over a stream of chunks,
  optionally stabilised (pipeline.stabilize), resumable, or on Ray workers.
"""
from __future__ import annotations

from typing import Iterable, Iterator

import torch
import torch.nn.functional as F

from ..checkpoints.shipped import has_default_upscaler, load_default_upscaler
from ..errors import InputError
from ..flow.dis import DISFlow
from ..flow.pairs import PairFlows
from ..models.upscaler import FLOW_PRESET, MIN_SIDE
from ..ops.frames import check_frames
from ..ops.tiling import tiled_map
from ..progress import PieceProgress, Reporter, get_reporter
from ..speed import autocast, autocast_dtype, use_channels_last
from .cleaning import parse_clean, read_level
from .precision_probe import choose_cpu_precision
from .memory_fallback import retry_on_oom, smaller_pieces
from .segments import run_segments, run_segments_in_parallel
from .stabilize import FlowStabilizer

METHODS = ("learned", "learned-per-frame", "detail-per-frame", "bicubic")
TILE_OVERLAP_LR_PX = 16


def default_method() -> str:
    """'learned' when the shipped weights are installed, else 'bicubic'."""
    return "learned" if has_default_upscaler(4) else "bicubic"


# ---------------------------------------------------------------- one window
@torch.inference_mode()
def _run_window(lr: torch.Tensor, model, flows: tuple[torch.Tensor, torch.Tensor] | None, tile_lr_px: int,
                tile_overlap_lr_px: int, precision: str = "fp32", progress: Reporter | None = None,
                level: torch.Tensor | None = None) -> torch.Tensor:
    """One temporal window [n,3,h,w] -> [n,3,sh,sw] (model.scale), in spatial tiles of ``tile_lr_px``
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

    tile = tile_lr_px or max(h, w)
    return tiled_map(run, [lr, ff, fb], tile=tile, overlap=min(tile_overlap_lr_px, tile - 1),
                     out_scale=model.scale, blend="linear", margin=0.0, reporter=progress).clamp_(0, 1)


def _rescale_output(y: torch.Tensor, model_scale: int, scale: int) -> torch.Tensor:
    if model_scale == scale:
        return y
    h, w = y.shape[-2:]
    f = scale / model_scale
    return F.interpolate(y, size=(round(h * f), round(w * f)), mode="bicubic", align_corners=False,
                         antialias=True).clamp_(0, 1)


def window_tiles(tile_lr_px: int, tile_overlap_lr_px: int, lr: torch.Tensor) -> dict:
    """A window's tile settings: the tile (0: whole frames) at most the frame's longer side, so that running
    out of memory can halve it from there."""
    side = max(lr.shape[-2:])
    return {"tile_lr_px": min(tile_lr_px or side, side), "tile_overlap_lr_px": tile_overlap_lr_px}


def upscale_window(lr: torch.Tensor, first_frame: int, model, pair_flows, temporal: bool, tiles: dict,
                   precision: str, scale: int, progress: Reporter | None = None,
                   level: torch.Tensor | None = None) -> torch.Tensor:
    """One window [n,3,h,w] starting at video frame ``first_frame`` -> [n,3,sh,sw] at ``scale``: flow between
    its frames (``pair_flows``, a flow.pairs.PairFlows, shares pairs across windows), the network, x2 resampling.
    The single-process job and the Ray workers both run this."""
    flows = pair_flows.window(first_frame, lr) if temporal and len(lr) > 1 else None
    y = _run_window(lr, model, flows, tiles["tile_lr_px"], tiles["tile_overlap_lr_px"], precision, progress, level)
    return _rescale_output(y, model.scale, scale)


# ---------------------------------------------------------------- streaming
def check_stream_options(window: int, overlap: int, scale: int, model_scale: int, stabilize: float,
                         tile_lr_px: int, tile_overlap_lr_px: int) -> None:
    if not isinstance(window, int) or window < 1:
        raise InputError(f"window={window!r}; expected an integer >= 1 (frames per window)")
    if not isinstance(overlap, int) or overlap < 0 or (window > 1 and 2 * overlap >= window):
        raise InputError(f"overlap={overlap!r}; expected an integer with 0 <= 2*overlap < window={window}")
    if scale not in (2, 4) or scale > model_scale:
        raise InputError(f"scale={scale!r}; expected 2 or 4 (at most the model's x{model_scale})")
    if not 0.0 <= stabilize <= 1.0:      # NaN fails this too
        raise InputError(f"stabilize={stabilize!r}; expected 0 (off) to 1")
    tile, overlap_px = tile_lr_px, tile_overlap_lr_px
    if not isinstance(tile, int) or isinstance(tile, bool) or (tile != 0 and tile <= 2 * overlap_px):
        raise InputError(f"tile={tile!r}; expected 0 (no tiling) or more than {2 * overlap_px} LR pixels "
                         f"(twice the {overlap_px}-pixel tile overlap)")


def upscale_segments(chunks: Iterable[torch.Tensor], model, scale: int = 4, window: int = 12, overlap: int = 2,
                     temporal: bool = True, flow_preset: str = FLOW_PRESET, tile_lr_px: int = 512,
                     tile_overlap_lr_px: int = TILE_OVERLAP_LR_PX, stabilize: float = 0.0,
                     reporter: Reporter | None = None, resume=None,
                     stabilizer_state: dict | None = None, retry_oom: bool = False,
                     precision: str = "auto", pool=None, clean="auto") -> Iterator[tuple]:
    """Upscale a stream of LR chunks [n,3,h,w]; yield (segment, HR frames [n,3,sH,sW], stabiliser state).

    Windows of ``window`` frames overlap by ``overlap`` frames; outputs in the
    overlap are cross-faded linearly, so there is no jump at a seam, and every
    frame except the first/last ``overlap`` sees context on both sides. At most
    ``window`` LR frames and one window of outputs are held in memory.
    ``stabilize`` > 0 additionally runs ``FlowStabilizer(strength=stabilize)``
    on the outputs (lower warping error; see ``stabilize_with_flow``).
    ``resume`` (pipeline.segments.Resume) and ``stabilizer_state`` continue a
    job from its cache. ``retry_oom``: a window that runs out of memory is
    retried with halved tiles (the file job; the Upscale node retries the
    whole clip itself, shrinking tiles and then windows). ``precision``:
    autocast of the network (vsr_core.speed: "auto" is bf16 on CPUs with AMX or
    AVX512-BF16 and on CUDA, float32 elsewhere; "fp32" for exact float32).
    ``pool`` (jobs.distributed.RayPool): windows run on its workers, a few in
    flight, and come back in order (the stabiliser stays here). ``clean``: "auto" or 0..1 (pipeline.cleaning),
    its level read once from the first chunk (frame 0 on: a resumed job reads through the finished frames).
    """
    clean = parse_clean(clean)
    check_stream_options(window, overlap, scale, model.scale, stabilize, tile_lr_px, tile_overlap_lr_px)
    if precision == "auto" and next(model.parameters()).device.type == "cpu":
        choose_cpu_precision(model)     # bf16 or fp32 on this CPU: timed once, then cached
    if autocast_dtype(next(model.parameters()).device, precision) is not None:
        use_channels_last(model)    # oneDNN's reduced-precision convolutions run NHWC (2.0 vs 2.6 s a window here)
    rep = get_reporter(reporter)
    pair_flows = PairFlows(DISFlow(flow_preset), keep=2 * window)   # shared by windows and stabiliser
    stabilizer = FlowStabilizer(stabilize, flow_preset, pair_flows=pair_flows) if stabilize > 0 else None
    if stabilizer is not None and stabilizer_state:
        stabilizer.set_state(stabilizer_state)
    skip = resume.first_frame if resume is not None else 0
    lr_queue: list[torch.Tensor] = []      # LR frames whose outputs are not yet out (for the stabiliser)
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
            current.update(window_tiles(tile_lr_px, tile_overlap_lr_px, lr))

        def attempt(tiles):     # the window's new frames (the rest were counted with the window before)
            progress = PieceProgress(rep, max(len(lr) - (overlap if first_frame else 0), 1))
            return upscale_window(lr, first_frame, model, pair_flows, temporal, tiles, precision, scale, progress,
                                  clip["level"])
        if not retry_oom:
            return attempt(current), {}
        y, fitted = retry_on_oom(attempt, dict(current), lambda p: smaller_pieces(p, min_tile=16),
                                 f"upscale window at frame {first_frame}", rep)
        current.update(fitted)
        return y, {}

    overlap = overlap if window > 1 else 0
    chunks = read_level(checked(chunks), model, clean, clip, rep)
    if pool is None:
        segments = run_segments(chunks, process, window, overlap, rep, resume)
    else:
        segments = run_segments_in_parallel(chunks, lambda s: pool.submit(s, clip["level"]), pool.collect,
                                            window, overlap, rep,
                                            resume, in_flight=2 * len(pool.actors))
    for segment in segments:
        y = segment.frames
        if stabilizer is not None:
            lr = torch.stack(lr_queue[:len(y)])
            del lr_queue[:len(y)]
            y = stabilizer(y, lr, first_index=segment.first_frame)
        yield segment, y, (stabilizer.get_state() if stabilizer is not None else {})


def stream_upscale(chunks: Iterable[torch.Tensor], model, scale: int = 4, window: int = 12, overlap: int = 2,
                   temporal: bool = True, flow_preset: str = FLOW_PRESET, tile_lr_px: int = 512,
                   tile_overlap_lr_px: int = TILE_OVERLAP_LR_PX,
                   stabilize: float = 0.0, reporter: Reporter | None = None,
                   precision: str = "auto", clean="auto") -> Iterator[torch.Tensor]:
    """``upscale_segments`` yielding only the HR frames [n,3,sH,sW] (float 0..1), in order."""
    for _, y, _ in upscale_segments(chunks, model, scale, window, overlap, temporal, flow_preset, tile_lr_px,
                                    tile_overlap_lr_px, stabilize, reporter, precision=precision, clean=clean):
        yield y


def upscale_frames(frames: torch.Tensor, model=None, scale: int = 4, window: int = 12, overlap: int = 2,
                   temporal: bool = True, flow_method: str = "dis", flow_preset: str = FLOW_PRESET,
                   tile_lr_px: int = 512, tile_overlap_lr_px: int = TILE_OVERLAP_LR_PX, stabilize: float = 0.0,
                   reporter: Reporter | None = None, precision: str = "auto", clean="auto") -> torch.Tensor:
    """Learned video upscaling of float frames [T,3,H,W] in 0..1 -> [T,3,sH,sW].

    ``model``: a VideoUpscaler (None: the shipped default). ``temporal=False``
    runs it frame by frame (no propagation). ``stabilize`` (0..1, default
    off) adds flow-guided temporal stabilisation of the output. Frame count is
    preserved for any T; memory is bounded by ``window`` and ``tile_lr_px``.
    ``precision``: network autocast ("auto": bf16 on AMX/AVX512-BF16 CPUs and CUDA). ``clean``: "auto" or
    0 (keep all detail) .. 1 (clean hardest), pipeline.cleaning.
    """
    if flow_method != "dis":
        raise InputError(f"flow_method={flow_method!r}; expected 'dis' (weight-free, the propagation's flow)")
    check_frames(frames, "frames", MIN_SIDE)
    if model is None:
        model = load_default_upscaler(scale)
    rep = get_reporter(reporter)
    rep.start(frames.shape[0], f"upscale x{scale}")
    out = list(stream_upscale([frames], model, scale, window, overlap, temporal, flow_preset, tile_lr_px,
                              tile_overlap_lr_px, stabilize, rep, precision, clean))
    return torch.cat(out)
