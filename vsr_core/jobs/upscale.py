"""`upscale`: a video file or frame folder upscaled into a video file or PNG folder, resumable."""
from __future__ import annotations

import dataclasses

import torch

from ..checkpoints.detail_loader import DEFAULT_DETAIL, detail_identity, load_detail_model
from ..checkpoints.shipped import load_given_or_default_upscaler
from ..errors import InputError
from ..file_identity import file_identity
from ..models.upscaler import FLOW_PRESET
from ..ops.frames import float_to_uint8, tchw_to_thwc, thwc_to_tchw, uint8_to_float
from ..ops.resize import bicubic_upscale
from ..pipeline.detail import BORDER_LR_PX, DETAIL_TILE_OVERLAP_LR_PX, check_detail_options, detail_segments
from ..pipeline.memory_plan import CLI_FLAGS, FreeMemory, plan_upscale
from ..pipeline.upscale import default_method, upscale_segments
from ..pipeline.upscale_settings import TILE_OVERLAP_PX, UpscaleSettings, check_model_scale
from ..progress import Reporter, get_reporter
from .file_job import CacheSettings, OutputSettings, run_file_job
from .job_settings import CHUNK_FRAMES, JobSettings
from .relay import detail_model_keyframes, relay_file


def upscale_file(src: str, dst: str, settings: UpscaleSettings = UpscaleSettings(), job: JobSettings = JobSettings(),
                 *, model=None, detail_model=None, reporter: Reporter | None = None,
                 memory: FreeMemory | None = None, flags: tuple[str, ...] = CLI_FLAGS) -> int:
    """Upscale a video or image folder into a video file or PNG folder; returns the frame count.

    ``settings.method``: 'learned' (the shipped video upscaler, or ``settings.weights``),
    'learned-per-frame' (same network without temporal propagation),
    'detail-per-frame' (``settings.detail`` alone, see _detail_file) or 'bicubic'; None picks 'learned' when
    its weights are installed. 'learned' with a detail model relays its output on every
    ``keyframe_every``-th frame (and scene cuts) through the video by motion, scaled by ``detail_strength``
    (0: the learned output alone; jobs.relay). Memory is bounded by the window: windows are decoded, upscaled
    and encoded as the stream goes. The output has the input's frame count, frame times, colour and audio.
    The learned methods keep finished frames, encoded, in ``job.cache_dir`` (default: a hidden folder beside
    ``dst``) until the output is complete, so running the same command again after a cancel or crash
    resumes (see vsr_core.jobs). ``model`` / ``detail_model``: already loaded networks (the nodes'), keyed
    in the cache by the weights file they came from; otherwise the job loads them (vsr_core.checkpoints).
    ``job.workers`` > 0 runs the windows on that many Ray actors (``job.ray_address``: an existing cluster,
    default a local one; ``job.threads`` each); the frames are the same for any number of workers
    (jobs.distributed). Tile and window are lowered to fit ``memory`` (default: what is free now) before
    the first frame, or the job refused (_planner); ``flags`` names them in what is said. ``settings.clean``:
    "auto" (read from the clip) or 0 (keep all detail) .. 1 (clean hardest), pipeline.cleaning.
    """
    method = settings.method or default_method()
    detailed = settings.detail is not None or detail_model is not None
    output = OutputSettings(dst, job.format, job.crf, job.overwrite)
    cache = CacheSettings({}, job.cache_dir, job.keep_cache, job.chunk_frames or CHUNK_FRAMES)
    relay = method == "learned" and detailed
    if relay and settings.detail_strength > 0:
        return _relay_file(src, dst, settings, job, model, detail_model, reporter)
    if method == "detail-per-frame" or (detailed and not relay):
        return _detail_file(src, method, settings, job, output, detail_model, cache, reporter)
    if method == "bicubic":
        model, cache = None, None
    else:
        model = model if model is not None else load_given_or_default_upscaler(settings.weights, settings.scale)
        check_model_scale(settings.scale, model.scale)
        cache.key = _windows_key(settings, method, model, job)
    reporter = get_reporter(reporter)
    chosen = {"tile": settings.upscaler_tile_px, "window": settings.window, "overlap": settings.window_overlap}
    prepare = _planner(chosen, settings.scale, model, memory, flags, reporter, job.chunk_frames is None)
    work = _windows_work(model, dataclasses.replace(settings, method=method), chosen, job, reporter)
    return run_file_job(src, output, work, job.load, cache, reporter,
                        f"upscale x{settings.scale} ({method})" + (f" on {job.workers} Ray workers"
                                                                    if job.workers else ""),
                        prepare=prepare)


def _windows_key(settings: UpscaleSettings, method: str, model, job: JobSettings) -> dict:
    """What the learned methods' cache is keyed by (the memory plan adds tile, window and overlap)."""
    if getattr(model, "weights_path", None) is None:
        raise InputError("model has no weights file to key the resume cache (and the Ray workers) by; "
                         "expected an upscaler loaded with vsr_core.checkpoints.shipped.load_upscaler")
    key = {"command": "upscale", "scale": settings.scale, "method": method, "window": settings.window,
           "overlap": settings.window_overlap, "tile": settings.upscaler_tile_px, "stabilize": settings.stabilize,
           "flow": f"dis:{FLOW_PRESET}", "weights": file_identity(model.weights_path)}
    for name in ("precision", "clean"):
        if getattr(settings, name) != "auto":  # "auto" stays out of the key, so earlier versions' caches resume
            key[name] = getattr(settings, name)
    if settings.tile_overlap_px != TILE_OVERLAP_PX:
        key["tile_overlap"] = settings.tile_overlap_px
    if job.workers:        # the same frames for any number of workers, but not those of one process
        key["distributed"] = {"threads_per_worker": job.worker_threads}
        from .distributed import resolve_ray_address
        resolve_ray_address(job.ray_address)      # a wrong address fails in seconds, before any work
    return key


def _windows_work(model, settings: UpscaleSettings, chosen: dict, job: JobSettings, reporter: Reporter):
    """The file job's work for bicubic (``model`` None) and the learned methods: windows through
    upscale_segments, here or on Ray workers; ``chosen``: tile, window and overlap once planned."""
    scale = settings.scale

    def work(reader, resume, consumer_state):
        planned = dataclasses.replace(settings, tile_px=chosen["tile"], window=chosen["window"],
                                      window_overlap=chosen["overlap"])
        lr_chunks = (thwc_to_tchw(uint8_to_float(batch)) for batch in reader.windows(planned.window))
        if model is None:
            for x in lr_chunks:
                reporter.check_interrupt()
                y = bicubic_upscale(x, scale)
                reporter.update(len(x))
                yield None, float_to_uint8(tchw_to_thwc(y), "bicubic upscale"), {}
            return
        pool = None
        if job.workers:            # started once paths, input and locks are checked
            from .distributed import RayPool, WindowWorker
            pool = RayPool(job.workers, job.ray_address, WindowWorker, (model.weights_path, planned,
                           job.worker_threads), job.worker_threads)
        try:
            for segment, y, state in upscale_segments(lr_chunks, model, planned, reporter, resume=resume,
                                                      stabilizer_state=consumer_state, retry_oom=pool is None,
                                                      pool=pool):
                yield segment, float_to_uint8(tchw_to_thwc(y), "upscaled frames", segment.first_frame), state
        finally:
            if pool is not None:
                pool.close()
    return work


def _relay_file(src: str, dst: str, settings: UpscaleSettings, job: JobSettings, model, detail_model,
                reporter: Reporter | None) -> int:
    """--method learned --detail: the learned upscaler plus the detail model's keyframes relayed by motion."""
    if settings.stabilize:
        raise InputError(f"stabilize={settings.stabilize!r}; the relay keeps detail steady itself (expected 0 "
                         f"with --detail)")
    if job.workers:
        raise InputError(f"workers={job.workers!r}; the relay runs in this process (expected 0 with --detail)")
    model = model if model is not None else load_given_or_default_upscaler(settings.weights, settings.scale)
    if detail_model is None:
        detail_model = load_detail_model(settings.detail or DEFAULT_DETAIL)
    return relay_file(src, dst, model, detail_model_keyframes(detail_model), settings, job,
                      reporter=reporter)


def _detail_file(src: str, method: str, settings: UpscaleSettings, job: JobSettings, output: OutputSettings,
                 model, cache: CacheSettings, reporter: Reporter | None) -> int:
    """--method detail-per-frame: the detail model alone on every frame, streamed ``window`` frames at a
    time, cached and resumable like the learned methods (the cache is keyed by the detail model's file).
    ``settings.detail``: a shipped name or a checkpoint path (default 'realesrgan-x4plus'), or ``model``
    already loaded by checkpoints.detail_loader.load_detail_model."""
    reporter = get_reporter(reporter)
    if method != "detail-per-frame":
        raise InputError(f"--detail {settings.detail!r} is used by --method learned (the relay) and "
                         f"detail-per-frame; with --method {method} it would be ignored")
    if settings.stabilize:
        raise InputError(f"stabilize={settings.stabilize!r}; --method detail-per-frame runs the detail model "
                         f"alone (0)")
    if job.workers:
        raise InputError(f"workers={job.workers!r}; --method detail-per-frame runs in this process (0)")
    scale, window, tile = settings.scale, settings.window, settings.detail_tile_px
    if model is None:
        model = load_detail_model(settings.detail or DEFAULT_DETAIL)
    check_detail_options(scale, model.scale, tile, DETAIL_TILE_OVERLAP_LR_PX)
    cache.key = {"command": "upscale", "scale": scale, "method": "detail-per-frame", "window": window,
                 "tile": tile, "tile_overlap": DETAIL_TILE_OVERLAP_LR_PX, "border": BORDER_LR_PX,
                 "detail": detail_identity(model)}

    def work(reader, resume, consumer_state):
        lr_chunks = (thwc_to_tchw(uint8_to_float(batch)) for batch in reader.windows(window))
        for segment, y, state in detail_segments(lr_chunks, model, scale, window, tile, reporter=reporter,
                                                 resume=resume):
            yield segment, float_to_uint8(tchw_to_thwc(y), "detail frames", segment.first_frame), state

    return run_file_job(src, output, work, job.load, cache, reporter,
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
