"""Upscaling videos: in-memory clips (the Upscale node) and files (the CLI), streamed
window by window so memory depends on the window and tile size, never on the
video's length or resolution.

Public API (what the nodes call):

- ``upscale_frames(frames, model, scale, window, overlap, ...)``: the learned
  video upscaler over overlapping temporal windows (cross-faded seams) and,
  for large frames, overlapping spatial tiles.
- ``stabilize_with_flow(upscaled, lr_frames, ...)``: temporal stabilisation of
  any per-frame upscaler's output (ComfyUI's UPSCALE_MODEL) by flow-guided
  blending with the warped previous output where the flow is reliable.
"""
from __future__ import annotations

from typing import Iterable, Iterator

import torch
import torch.nn.functional as F

from .errors import InputError
from .progress import Reporter, get_reporter

METHODS = ("learned", "learned-per-frame", "bicubic")
TILE_OVERLAP_LR_PX = 16


def default_method() -> str:
    """'learned' when the shipped weights are installed, else 'bicubic'."""
    from .weights import has_default_upscaler
    return "learned" if has_default_upscaler(4) else "bicubic"


# ---------------------------------------------------------------- one window
def _blend_ramp(n: int, overlap: int, first: bool, last: bool) -> torch.Tensor:
    w = torch.ones(n)
    if overlap > 0:
        ramp = torch.arange(1, overlap + 1, dtype=torch.float32) / (overlap + 1)
        if not first:
            w[:overlap] = torch.minimum(w[:overlap], ramp)
        if not last:
            w[n - overlap:] = torch.minimum(w[n - overlap:], ramp.flip(0))
    return w


def _tiles(size: int, tile: int, overlap: int) -> list[int]:
    if size <= tile:
        return [0]
    step = tile - overlap
    starts = list(range(0, size - tile, step)) + [size - tile]
    return sorted(set(starts))


@torch.inference_mode()
def _run_window(lr: torch.Tensor, model, flows: tuple[torch.Tensor, torch.Tensor] | None, tile: int,
                tile_overlap: int, precision: str = "fp32") -> torch.Tensor:
    """One temporal window [n,3,h,w] -> [n,3,sh,sw] (model.scale), spatially tiled if large.

    ``flows``: (forward, backward) [n-1,2,h,w] between its frames; None runs frame by frame.
    ``precision``: autocast (vsr_core.speed; "auto" is bf16 on CPUs with AMX/AVX512-BF16)."""
    from .speed import autocast
    p = next(model.parameters())
    n, _, h, w = lr.shape
    s = model.scale
    temporal = flows is not None and n > 1
    ff, fb = flows if temporal else (None, None)

    def run(y0, x0, th, tw):
        x = lr[:, :, y0:y0 + th, x0:x0 + tw].to(p)
        with autocast(p.device, precision):
            if temporal:
                out = model(x[None], ff[None, :, :, y0:y0 + th, x0:x0 + tw].to(p),
                            fb[None, :, :, y0:y0 + th, x0:x0 + tw].to(p), temporal=True)
            else:
                out = model(x[None], temporal=False)
        return out[0].float().cpu()

    if not tile or (h <= tile and w <= tile):
        return run(0, 0, h, w).clamp_(0, 1)
    th, tw = min(tile, h), min(tile, w)
    out = torch.zeros(n, 3, h * s, w * s)
    weight = torch.zeros(1, 1, h * s, w * s)
    ys, xs = _tiles(h, th, tile_overlap), _tiles(w, tw, tile_overlap)
    for y0 in ys:
        wy = _blend_ramp(th * s, tile_overlap * s, y0 == 0, y0 + th >= h)
        for x0 in xs:
            wx = _blend_ramp(tw * s, tile_overlap * s, x0 == 0, x0 + tw >= w)
            wt = (wy[:, None] * wx[None, :])[None, None]
            out[:, :, y0 * s:(y0 + th) * s, x0 * s:(x0 + tw) * s] += run(y0, x0, th, tw) * wt
            weight[:, :, y0 * s:(y0 + th) * s, x0 * s:(x0 + tw) * s] += wt
    return (out / weight).clamp_(0, 1)


def _rescale_output(y: torch.Tensor, model_scale: int, scale: int) -> torch.Tensor:
    if model_scale == scale:
        return y
    h, w = y.shape[-2:]
    f = scale / model_scale
    return F.interpolate(y, size=(round(h * f), round(w * f)), mode="bicubic", align_corners=False,
                         antialias=True).clamp_(0, 1)


def window_tiles(tile: int, tile_overlap: int, lr: torch.Tensor) -> dict:
    """A window's tile settings: ``tile`` (0: whole frames) at most the frame's longer side, so that running
    out of memory can halve it from there."""
    side = max(lr.shape[-2:])
    return {"tile": min(tile or side, side), "tile_overlap": tile_overlap}


def upscale_window(lr: torch.Tensor, first_frame: int, model, pair_flows, temporal: bool, tiles: dict,
                   precision: str, scale: int) -> torch.Tensor:
    """One window [n,3,h,w] starting at video frame ``first_frame`` -> [n,3,sh,sw] at ``scale``: flow between
    its frames (``pair_flows``, a flow.pairs.PairFlows, shares pairs across windows), the network, x2 resampling.
    The single-process job and the Ray workers both run this."""
    flows = pair_flows.window(first_frame, lr) if temporal and len(lr) > 1 else None
    y = _run_window(lr, model, flows, tiles["tile"], tiles["tile_overlap"], precision)
    return _rescale_output(y, model.scale, scale)


# ---------------------------------------------------------------- streaming
def check_stream_options(window: int, overlap: int, scale: int, model_scale: int, stabilize: float, tile: int,
                         tile_overlap: int) -> None:
    if not isinstance(window, int) or window < 1:
        raise InputError(f"window={window!r}; expected an integer >= 1 (frames per window)")
    if not isinstance(overlap, int) or overlap < 0 or (window > 1 and 2 * overlap >= window):
        raise InputError(f"overlap={overlap!r}; expected an integer with 0 <= 2*overlap < window={window}")
    if scale not in (2, 4) or scale > model_scale:
        raise InputError(f"scale={scale!r}; expected 2 or 4 (at most the model's x{model_scale})")
    if not 0.0 <= stabilize <= 1.0:
        raise InputError(f"stabilize={stabilize!r}; expected 0 (off) to 1")
    if not isinstance(tile, int) or isinstance(tile, bool) or (tile != 0 and tile <= 2 * tile_overlap):
        raise InputError(f"tile={tile!r}; expected 0 (no tiling) or more than {2 * tile_overlap} LR pixels "
                         f"(twice the {tile_overlap}-pixel tile overlap)")


def upscale_segments(chunks: Iterable[torch.Tensor], model, scale: int = 4, window: int = 12, overlap: int = 2,
                     temporal: bool = True, flow_preset: str = "medium", tile: int = 512,
                     tile_overlap: int = TILE_OVERLAP_LR_PX, stabilize: float = 0.0,
                     reporter: Reporter | None = None, resume=None,
                     stabilizer_state: dict | None = None, retry_oom: bool = False,
                     precision: str = "auto", pool=None) -> Iterator[tuple]:
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
    flight, and come back in order (the stabiliser stays here).
    """
    from .flow.dis import DISFlow
    from .flow.pairs import PairFlows
    from .models.upscaler import check_lr
    from .pipeline.memory_fallback import retry_on_oom, smaller_pieces
    from .pipeline.segments import run_segments, run_segments_in_parallel
    from .speed import autocast_dtype, use_channels_last
    check_stream_options(window, overlap, scale, model.scale, stabilize, tile, tile_overlap)
    if autocast_dtype(next(model.parameters()).device, precision) is not None:
        use_channels_last(model)    # oneDNN's reduced-precision convolutions run NHWC (2.0 vs 2.6 s a window here)
    rep = get_reporter(reporter)
    pair_flows = PairFlows(DISFlow(flow_preset), keep=2 * window)   # shared by windows and stabiliser
    stabilizer = FlowStabilizer(stabilize, flow_preset, pair_flows=pair_flows) if stabilize > 0 else None
    if stabilizer is not None and stabilizer_state:
        stabilizer.set_state(stabilizer_state)
    skip = resume.first_frame if resume is not None else 0
    lr_queue: list[torch.Tensor] = []      # LR frames whose outputs are not yet out (for the stabiliser)

    def checked(chunks):
        seen = 0
        for chunk in chunks:
            check_lr(chunk, "frames")
            if stabilizer is not None:
                lr_queue.extend(chunk[max(0, skip - seen):].unbind(0))
            seen += len(chunk)
            yield chunk

    current: dict = {}                     # tile settings that fit in memory, kept for later windows

    def process(lr, lead, state, export, first_frame):
        if not current:
            current.update(window_tiles(tile, tile_overlap, lr))

        def attempt(tiles):
            return upscale_window(lr, first_frame, model, pair_flows, temporal, tiles, precision, scale)
        if not retry_oom:
            return attempt(current), {}
        y, fitted = retry_on_oom(attempt, dict(current), lambda p: smaller_pieces(p, min_tile=16),
                                 f"upscale window at frame {first_frame}", rep)
        current.update(fitted)
        return y, {}

    overlap = overlap if window > 1 else 0
    if pool is None:
        segments = run_segments(checked(chunks), process, window, overlap, rep, resume)
    else:
        segments = run_segments_in_parallel(checked(chunks), pool.submit, pool.collect, window, overlap, rep,
                                            resume, in_flight=2 * len(pool.actors))
    for segment in segments:
        y = segment.frames
        if stabilizer is not None:
            lr = torch.stack(lr_queue[:len(y)])
            del lr_queue[:len(y)]
            y = stabilizer(y, lr, first_index=segment.first_frame)
        yield segment, y, (stabilizer.get_state() if stabilizer is not None else {})


def stream_upscale(chunks: Iterable[torch.Tensor], model, scale: int = 4, window: int = 12, overlap: int = 2,
                   temporal: bool = True, flow_preset: str = "medium", tile: int = 512,
                   tile_overlap: int = TILE_OVERLAP_LR_PX,
                   stabilize: float = 0.0, reporter: Reporter | None = None,
                   precision: str = "auto") -> Iterator[torch.Tensor]:
    """``upscale_segments`` yielding only the HR frames [n,3,sH,sW] (float 0..1), in order."""
    for _, y, _ in upscale_segments(chunks, model, scale, window, overlap, temporal, flow_preset, tile,
                                    tile_overlap, stabilize, reporter, precision=precision):
        yield y


def upscale_frames(frames: torch.Tensor, model=None, scale: int = 4, window: int = 12, overlap: int = 2,
                   temporal: bool = True, flow_method: str = "dis", flow_preset: str = "medium",
                   tile: int = 512, tile_overlap: int = TILE_OVERLAP_LR_PX, stabilize: float = 0.0,
                   reporter: Reporter | None = None, precision: str = "auto") -> torch.Tensor:
    """Learned video upscaling of float frames [T,3,H,W] in 0..1 -> [T,3,sH,sW].

    ``model``: a VideoUpscaler (None: the shipped default). ``temporal=False``
    runs it frame by frame (no propagation). ``stabilize`` (0..1, default
    off) adds flow-guided temporal stabilisation of the output. Frame count is
    preserved for any T; memory is bounded by ``window`` and ``tile``.
    ``precision``: network autocast ("auto": bf16 on AMX/AVX512-BF16 CPUs and CUDA).
    """
    from .models.upscaler import check_lr
    if flow_method != "dis":
        raise InputError(f"flow_method={flow_method!r}; expected 'dis' (weight-free, the propagation's flow)")
    check_lr(frames, "frames")
    if model is None:
        from .weights import load_default_upscaler
        model = load_default_upscaler(scale)
    rep = get_reporter(reporter)
    rep.start(frames.shape[0], f"upscale x{scale}")
    out = list(stream_upscale([frames], model, scale, window, overlap, temporal, flow_preset, tile, tile_overlap,
                              stabilize, rep, precision))
    return torch.cat(out)


# ---------------------------------------------------------------- stabiliser
class FlowStabilizer:
    """Streaming form of ``stabilize_with_flow``: call it on consecutive chunks;
    it carries the previous output and LR frame across calls."""

    def __init__(self, strength: float = 0.6, flow_preset: str = "medium", photometric_tol: float = 0.04,
                 detail_tol: float = 0.12, pair_flows=None):
        from .flow.dis import DISFlow
        from .flow.pairs import PairFlows
        if not 0.0 <= strength <= 1.0:
            raise InputError(f"strength={strength}; expected 0..1")
        if photometric_tol <= 0 or detail_tol <= 0:
            raise InputError(f"photometric_tol={photometric_tol}, detail_tol={detail_tol}; expected > 0")
        self.strength, self.photometric_tol, self.detail_tol = strength, photometric_tol, detail_tol
        self.flows = pair_flows or PairFlows(DISFlow(flow_preset))   # pairs keyed by frame index
        self.prev_out = None
        self.prev_lr = None
        self.next_index = 0

    def get_state(self) -> dict:
        """What continuing after the last frame needs (cached by resumable jobs)."""
        return {} if self.prev_out is None else {"prev_out": self.prev_out, "prev_lr": self.prev_lr}

    def set_state(self, state: dict) -> None:
        self.prev_out, self.prev_lr = state.get("prev_out"), state.get("prev_lr")

    @torch.inference_mode()
    def __call__(self, upscaled: torch.Tensor, lr_frames: torch.Tensor, reporter: Reporter | None = None,
                 first_index: int | None = None) -> torch.Tensor:
        """``first_index``: the video frame index of ``upscaled[0]`` (default: right after the last call)."""
        from .flow.field import resize_flow
        from .flow.occlusion import occlusion_masks
        from .flow.warp import backward_warp, inside_mask
        from .models.upscaler import check_lr

        check_lr(lr_frames, "lr_frames")
        if not isinstance(upscaled, torch.Tensor) or upscaled.dim() != 4 or upscaled.shape[1] != 3:
            raise InputError(f"upscaled: expected float frames [T,3,H,W], got "
                             f"{tuple(upscaled.shape) if isinstance(upscaled, torch.Tensor) else type(upscaled).__name__}")
        if upscaled.shape[0] != lr_frames.shape[0]:
            raise InputError(f"upscaled has {upscaled.shape[0]} frames and lr_frames {lr_frames.shape[0]}; "
                             f"expected the same count")
        if not bool(torch.isfinite(upscaled).all()):
            raise InputError("upscaled contains NaN or infinite values")
        rep = get_reporter(reporter)
        t, _, H, W = upscaled.shape
        first = self.next_index if first_index is None else first_index
        self.next_index = first + t
        out = torch.empty(upscaled.shape, dtype=torch.float32)
        for i in range(t):
            rep.check_interrupt()
            up = upscaled[i:i + 1].float()
            cur = lr_frames[i:i + 1].float()
            if self.prev_out is None or self.strength == 0.0 or self.prev_out.shape[-2:] != (H, W):
                out[i] = up[0]
            else:
                prev = self.prev_lr
                ff, fb = self.flows.pair(first + i - 1, prev, cur)   # frame i-1 -> i, and i -> i-1
                occ_b, _ = occlusion_masks(fb, ff)    # pixels of frame i not visible in i-1
                lr_err = (cur - backward_warp(prev, fb, padding_mode="border")).abs().mean(1, keepdim=True)
                m_lr = inside_mask(fb) * (1 - occ_b) * torch.exp(-(lr_err / self.photometric_tol) ** 2)
                flow_hr = resize_flow(fb, H, W)
                m = F.interpolate(m_lr, size=(H, W), mode="bilinear", align_corners=False) * inside_mask(flow_hr)
                warped = backward_warp(self.prev_out, flow_hr, mode="bicubic", padding_mode="border").clamp(0, 1)
                diff = warped - up
                m = m * torch.exp(-(diff.abs().mean(1, keepdim=True) / self.detail_tol) ** 2)
                out[i] = (up + self.strength * m * diff)[0]
            self.prev_out, self.prev_lr = out[i:i + 1].clamp(0, 1), cur
            rep.update(1)
        return out.clamp_(0, 1).to(upscaled.dtype)


def stabilize_with_flow(upscaled: torch.Tensor, lr_frames: torch.Tensor, strength: float = 0.6,
                        flow_preset: str = "medium", photometric_tol: float = 0.04, detail_tol: float = 0.12,
                        reporter: Reporter | None = None) -> torch.Tensor:
    """Make any per-frame upscaler's output temporally stable.

    ``upscaled`` [T,3,H,W] (e.g. from ComfyUI's UPSCALE_MODEL, frame by
    frame) and ``lr_frames`` [T,3,h,w], both 0..1. A causal recursive filter:

        out_0 = up_0
        out_t = up_t + strength · m_t · (W(out_{t−1}) − up_t)

    W warps the previous *output* onto frame t (bicubic sampling, to keep
    detail) with DIS flow computed on the LR frames (cheap, and not fooled by
    the upscaler's own flicker), scaled to the output size. The blend mask
    m_t is the product of:

    - flow reliability: forward-backward consistency (not occluded) and the
      sampled point lying inside the frame;
    - an LR photometric check exp(−(|LR_t − W(LR_{t−1})| / photometric_tol)²):
      where the flow is wrong the LR frames disagree, so no blending (no
      ghosting on new content or fast motion);
    - a detail check exp(−(|up_t − W(out_{t−1})| / detail_tol)²): flicker is a
      small difference; a large one is a real change, kept as the upscaler drew it.

    Because the previous output already carries its own history, texture that
    the per-frame model redraws differently each frame converges instead of
    flickering, while anything the flow cannot explain stays per-frame. For
    long videos use ``FlowStabilizer`` chunk by chunk (same result).
    """
    rep = get_reporter(reporter)
    rep.start(int(upscaled.shape[0]) if isinstance(upscaled, torch.Tensor) else 0, "stabilise")
    return FlowStabilizer(strength, flow_preset, photometric_tol, detail_tol)(upscaled, lr_frames, rep)
