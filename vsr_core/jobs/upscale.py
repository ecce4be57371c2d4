"""`upscale`: a video file or frame folder upscaled into a video file or PNG folder, resumable."""
from __future__ import annotations

from ..checkpoints.shipped import load_default_upscaler, load_upscaler
from ..errors import InputError
from ..file_identity import file_identity
from ..models.upscaler import FLOW_PRESET
from ..ops.frames import float_to_uint8, tchw_to_thwc, thwc_to_tchw, uint8_to_float
from ..ops.resize import bicubic_upscale
from ..pipeline.upscale import (METHODS, TILE_OVERLAP_LR_PX, check_stream_options, default_method,
                               upscale_segments)
from ..progress import Reporter, get_reporter
from ..video import LoadOptions
from .file_job import CacheSettings, OutputSettings, run_file_job


def upscale_file(src: str, dst: str, scale: int = 4, method: str | None = None,
                 options: LoadOptions | None = None, fmt: str | None = None, crf: int = 18,
                 overwrite: bool = False, window: int = 12, overlap: int = 2, weights: str | None = None,
                 stabilize: float = 0.0, tile_lr_px: int = 512, cache_dir: str | None = None,
                 keep_cache: bool = False, chunk_frames: int = 48, model=None, workers: int = 0,
                 ray_address: str | None = None, worker_threads: int = 1, reporter: Reporter | None = None,
                 precision: str = "auto") -> int:
    """Upscale a video or image folder into a video file or PNG folder; returns the frame count.

    ``method``: 'learned' (the shipped video upscaler, or ``weights``),
    'learned-per-frame' (same network without temporal propagation) or
    'bicubic'; None picks 'learned' when its weights are installed. Memory is
    bounded by ``window`` frames: windows are decoded, upscaled and encoded as
    the stream goes. The output has the input's frame count, frame times,
    colour and audio. The learned methods keep finished frames, encoded, in
    ``cache_dir`` (default: a hidden folder beside ``dst``) until the output
    is complete, so running the same command again after a cancel or crash
    resumes (see vsr_core.jobs). ``model``: an already loaded VideoUpscaler
    (the streaming node's), keyed in the cache by the weights file it came from.
    ``workers`` > 0 runs the windows on that many Ray actors (``ray_address``:
    an existing cluster, default a local one; ``worker_threads`` each); the
    frames are the same for any number of workers (jobs.distributed).
    ``precision``: the network's autocast (vsr_core.speed; "auto" is measured per CPU).
    """
    method = method or default_method()
    if method not in METHODS:
        raise InputError(f"method={method!r}; expected one of {', '.join(METHODS)}")
    if scale not in (2, 4):
        raise InputError(f"scale={scale!r}; expected 2 or 4")
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
        if precision != "auto":    # "auto" stays out of the key, so caches of earlier versions still resume
            key["precision"] = precision
        if workers:        # the same frames for any number of workers, but not those of one process
            key["distributed"] = {"threads_per_worker": worker_threads}
        cache = CacheSettings(key=key, folder=cache_dir, keep=keep_cache, chunk_frames=chunk_frames)
    reporter = get_reporter(reporter)

    def work(reader, resume, consumer_state):
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
                                                      pool=pool, precision=precision):
                yield segment, float_to_uint8(tchw_to_thwc(y), "upscaled frames", segment.first_frame), state
        finally:
            if pool is not None:
                pool.close()

    return run_file_job(src, OutputSettings(dst, fmt, crf, overwrite), work, options, cache, reporter,
                        f"upscale x{scale} ({method})" + (f" on {workers} Ray workers" if workers else ""))
