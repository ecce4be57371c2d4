"""A detail model (vsr_core.checkpoints.detail_loader: Real-ESRGAN x4plus or any RRDBNet/SRVGGNetCompact)
over frames, each frame alone: the per-frame baseline (`--method detail-per-frame`) and the keyframe source
of the relay.

Each frame gets a mirrored border of ``border`` LR pixels (as the ncnn runtime of Real-ESRGAN pads, so the
edges look as they do there: the conversion check in the model card matches it to 1/255), then goes
through the network in overlapping spatial tiles (ops.tiling.tiled_map, blended linearly across the
overlaps), so memory depends on the tile size, never on the frame size apart from the output itself.
Precision as the video upscaler: autocast per vsr_core.speed ("auto": bfloat16 on CPUs with AMX or
AVX512-BF16 and on CUDA, float32 elsewhere), convolution weights channels-last when reduced.
"""
from __future__ import annotations

from typing import Iterable, Iterator

import torch
import torch.nn.functional as F

from ..errors import InputError
from ..ops.frames import check_frames
from ..ops.resize import resize_frames
from ..ops.tiling import tiled_map
from ..progress import Reporter, get_reporter
from ..speed import autocast, autocast_dtype, use_channels_last
from .memory_fallback import retry_on_oom, smaller_pieces
from .segments import Resume, run_segments

# LR pixels per tile. Tiles start flush with the frame's end, so a tile just smaller than the frame is
# run almost twice (192 on a bordered 320x180 frame ran 4 tiles of 192x192, 2.2x the pixels); 384 keeps
# 320x180 and 640x360 in one or two tiles. Memory grows with the tile's area at 16x in the x4plus
# upsampling layers (see benchmarks/bench_detail.py for the peak measured).
DETAIL_TILE_LR_PX = 384
DETAIL_TILE_OVERLAP_LR_PX = 16
BORDER_LR_PX = 10               # the ncnn runtime's prepadding for Real-ESRGAN
MIN_SIDE = 2                    # a mirrored border needs two pixels


def check_detail_options(scale: int, model_scale: int, tile: int, overlap: int) -> None:
    if scale not in (2, 4) or scale > model_scale:
        raise InputError(f"scale={scale!r}; expected 2 or 4, at most the detail model's x{model_scale}")
    if not isinstance(tile, int) or isinstance(tile, bool) or (tile != 0 and tile <= 2 * overlap):
        raise InputError(f"tile={tile!r}; expected 0 (whole frames) or more than {2 * overlap} LR pixels "
                         f"(twice the {overlap}-pixel tile overlap)")


def _prepare(model, precision: str) -> torch.nn.Module:
    if autocast_dtype(next(model.parameters()).device, precision) is not None:
        use_channels_last(model)        # oneDNN's reduced-precision convolutions run NHWC
    return model


@torch.inference_mode()
def _one_frame(frame: torch.Tensor, model, tile: int, overlap: int, border: int, precision: str) -> torch.Tensor:
    p = next(model.parameters())
    pad = min(border, frame.shape[-2] - 1, frame.shape[-1] - 1)
    x = F.pad(frame[None], (pad,) * 4, mode="reflect") if pad > 0 else frame[None]

    def run(t):
        with autocast(p.device, precision):
            y = model(t.to(p))
        return y.float().cpu()

    side = max(x.shape[-2:])
    tile = min(tile or side, side)
    y = tiled_map(run, [x], tile=tile, overlap=min(overlap, tile - 1), out_scale=model.scale, blend="linear",
                  margin=0.25)
    s = pad * model.scale
    return (y[..., s:y.shape[-2] - s, s:y.shape[-1] - s] if s else y).clamp_(0, 1)


def detail_upscale(frames: torch.Tensor, model, tile: int = DETAIL_TILE_LR_PX,
                   overlap: int = DETAIL_TILE_OVERLAP_LR_PX, scale: int | None = None, precision: str = "auto",
                   border: int = BORDER_LR_PX, reporter: Reporter | None = None) -> torch.Tensor:
    """Float frames [T,3,h,w] in 0..1 -> [T,3,h*scale,w*scale], each frame alone through ``model``.

    ``scale``: None (the model's) or a smaller 2/4, reached by an antialiased bicubic resample of the
    model's output. ``tile``: LR pixels per spatial tile (0: whole frames), tiles overlap by ``overlap``.
    ``border``: mirrored LR pixels around each frame before the network (cropped off after)."""
    check_frames(frames, "frames", MIN_SIDE)
    scale = scale or model.scale
    check_detail_options(scale, model.scale, tile, overlap)
    _prepare(model, precision)
    rep = get_reporter(reporter)
    out = []
    for frame in frames:
        rep.check_interrupt()
        y = _one_frame(frame, model, tile, overlap, border, precision)
        out.append(resize_frames(y, frame.shape[-2] * scale, frame.shape[-1] * scale))
    return torch.cat(out)


def detail_frames(frames: torch.Tensor, model, scale: int | None = None, tile: int = DETAIL_TILE_LR_PX,
                  overlap: int = DETAIL_TILE_OVERLAP_LR_PX, precision: str = "auto",
                  reporter: Reporter | None = None) -> torch.Tensor:
    """``detail_upscale`` as a stage of its own, for callers that run the detail model as one step (the
    ComfyUI node): a progress stage of one unit a frame, and a frame that runs out of memory is retried with
    halved tiles (later frames keep the tile that fitted) instead of failing the batch."""
    check_frames(frames, "frames", MIN_SIDE)
    scale = scale or model.scale
    check_detail_options(scale, model.scale, tile, overlap)
    rep = get_reporter(reporter)
    rep.start(frames.shape[0], f"detail model x{scale}")
    # whole frames (tile 0) can still shrink: they start as one tile of the bordered frame's size
    current = {"tile_px": tile or max(frames.shape[-2:]) + 2 * BORDER_LR_PX, "tile_overlap_px": overlap}
    out = []
    for i in range(frames.shape[0]):
        def attempt(p, i=i):
            return detail_upscale(frames[i:i + 1], model, p["tile_px"], p["tile_overlap_px"], scale,
                                  precision, reporter=rep)
        y, fitted = retry_on_oom(attempt, dict(current), lambda p: smaller_pieces(p, min_tile=2 * overlap + 2),
                                 f"detail model on frame {i}", rep)
        current.update(fitted)
        out.append(y)
        rep.update(1)
    return torch.cat(out)


def detail_segments(chunks: Iterable[torch.Tensor], model, scale: int, window: int = 12,
                    tile: int = DETAIL_TILE_LR_PX, overlap: int = DETAIL_TILE_OVERLAP_LR_PX,
                    precision: str = "auto", reporter: Reporter | None = None,
                    resume: Resume | None = None) -> Iterator[tuple]:
    """A stream of LR chunks [n,3,h,w] through ``detail_upscale``, ``window`` frames a segment (no temporal
    overlap: every frame is alone); yields (segment, HR frames, {}) like pipeline.upscale.upscale_segments,
    so the file job caches and resumes it the same way. A segment that runs out of memory is retried with
    halved tiles, and later segments keep the tile that fitted."""
    check_detail_options(scale, model.scale, tile, overlap)
    rep = get_reporter(reporter)
    current = {"tile_px": tile, "tile_overlap_px": overlap}

    def process(lr, lead, state, export, first_frame):
        if not current["tile_px"]:
            current["tile_px"] = max(lr.shape[-2:]) + 2 * BORDER_LR_PX

        def attempt(tiles):
            return detail_upscale(lr, model, tiles["tile_px"], tiles["tile_overlap_px"], scale, precision,
                                  reporter=rep)
        y, fitted = retry_on_oom(attempt, dict(current), lambda p: smaller_pieces(p, min_tile=2 * overlap + 2),
                                 f"detail model on frames from {first_frame}", rep)
        current.update(fitted)
        return y, {}

    for segment in run_segments(chunks, process, window, 0, rep, resume):
        yield segment, segment.frames, {}
