"""`upscale`: a video file or frame folder upscaled into a video file or PNG folder, resumable."""
from __future__ import annotations

import torch

from ..checkpoints.detail_loader import DEFAULT_DETAIL, detail_identity, load_detail_model
from ..checkpoints.shipped import load_default_upscaler, load_upscaler
from ..errors import InputError
from ..file_identity import file_identity
from ..models.upscaler import FLOW_PRESET
from ..ops.frames import float_to_uint8, tchw_to_thwc, thwc_to_tchw, uint8_to_float
from ..ops.resize import bicubic_upscale
from ..pipeline.detail import BORDER_LR_PX, DETAIL_TILE_LR_PX, DETAIL_TILE_OVERLAP_LR_PX, check_detail_options, \
    detail_segments
from ..pipeline.cleaning import parse_clean
from ..pipeline.memory_plan import CLI_FLAGS, FreeMemory, plan_upscale
from ..pipeline.upscale import (METHODS, TILE_OVERLAP_LR_PX, check_stream_options, default_method,
                               upscale_segments)
from ..progress import Reporter, get_reporter
from ..relay import check_strength
from ..video import LoadOptions
from .file_job import CacheSettings, OutputSettings, run_file_job
from .relay import detail_model_keyframes, relay_file


CHUNK_FRAMES = 48      # frames per cached chunk of a long clip: a cancel loses at most this many


def upscale_file(src: str, dst: str, scale: int = 4, method: str | None = None,
                 options: LoadOptions | None = None, fmt: str | None = None, crf: int = 18,
                 overwrite: bool = False, window: int = 12, overlap: int = 2, weights: str | None = None,
                 stabilize: float = 0.0, tile_lr_px: int | None = None, cache_dir: str | None = None,
                 keep_cache: bool = False, chunk_frames: int | None = None, model=None, workers: int = 0,
                 ray_address: str | None = None, worker_threads: int = 1, reporter: Reporter | None = None,
                 detail: str | None = None, detail_model=None, keyframe_every: int = 8,
                 detail_strength: float = 0.8, memory: FreeMemory | None = None,
                 flags: tuple[str, ...] = CLI_FLAGS, precision: str = "auto", clean="auto") -> int:
    """Upscale a video or image folder into a video file or PNG folder; returns the frame count.

    ``method``: 'learned' (the shipped video upscaler, or ``weights``),
    'learned-per-frame' (same network without temporal propagation),
    'detail-per-frame' (``detail`` alone, see _detail_file) or 'bicubic'; None picks 'learned' when its
    weights are installed. 'learned' with ``detail`` relays the detail model's output on every
    ``keyframe_every``-th frame (and scene cuts) through the video by motion, scaled by ``detail_strength``
    (0: the learned output alone; jobs.relay). ``tile_lr_px``: LR pixels per tile (None: 512, the detail
    model 384). Memory is bounded by ``window`` frames: windows are decoded, upscaled and encoded as
    the stream goes. The output has the input's frame count, frame times,
    colour and audio. The learned methods keep finished frames, encoded, in
    ``cache_dir`` (default: a hidden folder beside ``dst``) until the output
    is complete, so running the same command again after a cancel or crash
    resumes (see vsr_core.jobs). ``model``: an already loaded VideoUpscaler
    (the streaming node's), keyed in the cache by the weights file it came from.
    ``workers`` > 0 runs the windows on that many Ray actors (``ray_address``:
    an existing cluster, default a local one; ``worker_threads`` each); the
    frames are the same for any number of workers (jobs.distributed). Tile and window are lowered to fit
    ``memory`` (default: what is free now) before the first frame, or the job refused (_planner).
    ``precision``: the network's autocast (vsr_core.speed; "auto" is measured per CPU). ``clean``: "auto"
    (read from the clip) or 0 (keep all detail) .. 1 (clean hardest), pipeline.cleaning.
    """
    method = method or default_method()
    clean = parse_clean(clean)
    if method not in METHODS:
        raise InputError(f"method={method!r}; expected one of {', '.join(METHODS)}")
    if scale not in (2, 4):
        raise InputError(f"scale={scale!r}; expected 2 or 4")
    detailed = detail is not None or detail_model is not None
    relay = method == "learned" and detailed
    if relay and check_strength(detail_strength) > 0:
        return _relay_file(src, dst, scale, options, OutputSettings(dst, fmt, crf, overwrite), weights, model,
                           detail, detail_model, keyframe_every, detail_strength, tile_lr_px, stabilize, workers,
                           CacheSettings({}, cache_dir, keep_cache, chunk_frames or CHUNK_FRAMES), reporter, clean)
    if method == "detail-per-frame" or (detailed and not relay):
        return _detail_file(src, method, scale, options, OutputSettings(dst, fmt, crf, overwrite), window, detail,
                            detail_model, tile_lr_px, stabilize, workers,
                            CacheSettings({}, cache_dir, keep_cache, chunk_frames or CHUNK_FRAMES), reporter)
    tile_lr_px = 512 if tile_lr_px is None else tile_lr_px
    cache = None
    if method == "bicubic":
        model = None
    else:
        if model is None:
            model = load_upscaler(weights) if weights else load_default_upscaler(scale)
        check_stream_options(window, overlap, scale, model.scale, stabilize, tile_lr_px, TILE_OVERLAP_LR_PX)
        if getattr(model, "weights_path", None) is None:
            raise InputError("model has no weights file to key the resume cache (and the Ray workers) by; "
                             "expected an upscaler loaded with vsr_core.checkpoints.shipped.load_upscaler")
        key = {"command": "upscale", "scale": scale, "method": method, "window": window, "overlap": overlap,
               "tile": tile_lr_px, "stabilize": stabilize, "flow": f"dis:{FLOW_PRESET}",
               "weights": file_identity(model.weights_path)}
        for name, value in (("precision", precision), ("clean", clean)):
            if value != "auto":    # "auto" stays out of the key, so caches of earlier versions still resume
                key[name] = value
        if workers:        # the same frames for any number of workers, but not those of one process
            key["distributed"] = {"threads_per_worker": worker_threads}
            from .distributed import resolve_ray_address
            resolve_ray_address(ray_address)      # a wrong address fails in seconds, before any work
        cache = CacheSettings(key=key, folder=cache_dir, keep=keep_cache, chunk_frames=chunk_frames or CHUNK_FRAMES)
    reporter = get_reporter(reporter)
    chosen = {"tile": tile_lr_px, "window": window, "overlap": overlap}
    prepare = _planner(chosen, scale, model, memory, flags, reporter, chunk_frames is None)
    work = _windows_work(model, method, scale, chosen, stabilize, workers, ray_address, worker_threads, precision,
                         reporter, clean)
    return run_file_job(src, OutputSettings(dst, fmt, crf, overwrite), work, options, cache, reporter,
                        f"upscale x{scale} ({method})" + (f" on {workers} Ray workers" if workers else ""),
                        prepare=prepare)


def _windows_work(model, method: str, scale: int, chosen: dict, stabilize: float, workers: int,
                  ray_address: str | None, worker_threads: int, precision: str, reporter: Reporter, clean):
    """The file job's work for bicubic (``model`` None) and the learned methods: windows through
    upscale_segments, here or on Ray workers; ``chosen``: tile, window and overlap once planned."""
    def work(reader, resume, consumer_state):
        tile_lr_px, window, overlap = chosen["tile"], chosen["window"], chosen["overlap"]
        lr_chunks = (thwc_to_tchw(uint8_to_float(batch)) for batch in reader.windows(window))
        if model is None:
            for x in lr_chunks:
                reporter.check_interrupt()
                y = bicubic_upscale(x, scale)
                reporter.update(len(x))
                yield None, float_to_uint8(tchw_to_thwc(y), "bicubic upscale"), {}
            return
        pool = None
        if workers:            # started once paths, input and locks are checked
            from .distributed import RayPool, WindowWorker
            pool = RayPool(workers, ray_address, WindowWorker,
                           (model.weights_path, scale, method == "learned", tile_lr_px, precision, worker_threads),
                           worker_threads)
        try:
            for segment, y, state in upscale_segments(lr_chunks, model, scale, window=window, overlap=overlap,
                                                      temporal=(method == "learned"), tile_lr_px=tile_lr_px,
                                                      stabilize=stabilize, reporter=reporter, resume=resume,
                                                      stabilizer_state=consumer_state, retry_oom=pool is None,
                                                      pool=pool, precision=precision, clean=clean):
                yield segment, float_to_uint8(tchw_to_thwc(y), "upscaled frames", segment.first_frame), state
        finally:
            if pool is not None:
                pool.close()
    return work


def _relay_file(src: str, dst: str, scale: int, options: LoadOptions | None, output: OutputSettings,
                weights: str | None, model, detail: str | None, detail_model, every: int, strength: float,
                tile_lr_px: int | None, stabilize: float, workers: int, cache: CacheSettings,
                reporter: Reporter | None, clean) -> int:
    """--method learned --detail: the learned upscaler plus the detail model's keyframes relayed by motion."""
    if stabilize:
        raise InputError(f"stabilize={stabilize!r}; the relay keeps detail steady itself (expected 0 with --detail)")
    if workers:
        raise InputError(f"workers={workers!r}; the relay runs in this process (expected 0 with --detail)")
    if model is None:
        model = load_upscaler(weights) if weights else load_default_upscaler(scale)
    if detail_model is None:
        detail_model = load_detail_model(detail or DEFAULT_DETAIL)
    return relay_file(src, output.path, model, detail_model_keyframes(detail_model), scale, every, strength,
                      options=options, fmt=output.fmt, crf=output.crf, overwrite=output.overwrite,
                      tile_lr_px=512 if tile_lr_px is None else tile_lr_px, cache_dir=cache.folder,
                      keep_cache=cache.keep, chunk_frames=cache.chunk_frames, reporter=reporter, clean=clean)


def _detail_file(src: str, method: str, scale: int, options: LoadOptions | None, output: OutputSettings,
                 window: int, detail: str | None, model, tile_lr_px: int | None, stabilize: float, workers: int,
                 cache: CacheSettings, reporter: Reporter | None) -> int:
    """--method detail-per-frame: the detail model alone on every frame, streamed ``window`` frames at a
    time, cached and resumable like the learned methods (the cache is keyed by the detail model's file).
    ``detail``: a shipped name or a checkpoint path (default 'realesrgan-x4plus'), or ``model`` already
    loaded by checkpoints.detail_loader.load_detail_model."""
    reporter = get_reporter(reporter)
    if method != "detail-per-frame":
        raise InputError(f"--detail {detail!r} is used by --method learned (the relay) and detail-per-frame; "
                         f"with --method {method} it would be ignored")
    if stabilize:
        raise InputError(f"stabilize={stabilize!r}; --method detail-per-frame runs the detail model alone (0)")
    if workers:
        raise InputError(f"workers={workers!r}; --method detail-per-frame runs in this process (0)")
    if not isinstance(window, int) or window < 1:
        raise InputError(f"window={window!r}; expected an integer >= 1 (frames per segment)")
    tile = DETAIL_TILE_LR_PX if tile_lr_px is None else tile_lr_px
    if model is None:
        model = load_detail_model(detail or DEFAULT_DETAIL)
    check_detail_options(scale, model.scale, tile, DETAIL_TILE_OVERLAP_LR_PX)
    cache.key = {"command": "upscale", "scale": scale, "method": "detail-per-frame", "window": window,
                 "tile": tile, "tile_overlap": DETAIL_TILE_OVERLAP_LR_PX, "border": BORDER_LR_PX,
                 "detail": detail_identity(model)}

    def work(reader, resume, consumer_state):
        lr_chunks = (thwc_to_tchw(uint8_to_float(batch)) for batch in reader.windows(window))
        for segment, y, state in detail_segments(lr_chunks, model, scale, window, tile, reporter=reporter,
                                                 resume=resume):
            yield segment, float_to_uint8(tchw_to_thwc(y), "detail frames", segment.first_frame), state

    return run_file_job(src, output, work, options, cache, reporter,
                        f"upscale x{scale} (detail-per-frame, {model.detail_name})")


def short_clip_chunk(frames: int | None) -> int:
    """Frames per cached chunk: CHUNK_FRAMES, but at most a quarter of a short clip, so a cancelled short
    job also resumes (a chunk is closed at the first window boundary past it)."""
    return CHUNK_FRAMES if not frames else min(CHUNK_FRAMES, max(1, frames // 4))


def _planner(chosen: dict, scale: int, model, memory: FreeMemory | None, flags: tuple[str, ...],
             reporter: Reporter, auto_chunks: bool):
    """prepare(reader, cache) for run_file_job: the memory plan for the input's frame size, logged, written
    into ``chosen`` (tile, window, overlap, the requested ones on entry) and into the cache's key; with
    ``auto_chunks`` the chunk length for the clip's length."""
    tile, window, overlap = chosen["tile"], chosen["window"], chosen["overlap"]

    def prepare(reader, cache: CacheSettings | None):
        device = next(model.parameters()).device if model is not None else torch.device("cpu")
        plan = plan_upscale(reader.height, reader.width, scale, window, overlap, tile,
                            memory or FreeMemory.of(device), learned=model is not None, flags=flags)
        reporter.log(plan.describe(tile, window, flags))
        chosen.update(tile=plan.tile, window=plan.window, overlap=plan.overlap)
        if cache is not None:
            cache.key.update(chosen)
            if auto_chunks:
                cache.chunk_frames = short_clip_chunk(reader.expected_frames)
    return prepare
