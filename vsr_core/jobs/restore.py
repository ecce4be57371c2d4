"""`restore`: the whole diffusion graph over a video file or frame folder, in segments, resumable."""
from __future__ import annotations

import dataclasses

from ..errors import InputError
from ..ops.frames import thwc_to_tchw, uint8_to_float
from ..pipeline.restore_video import (RestoreModels, RestoreSettings, load_restore_models, restore_model_files,
                                      restore_model_paths, restore_segment_fitting)
from ..pipeline.segments import run_segments, run_segments_in_parallel
from ..progress import Reporter, get_reporter
from ..video import LoadOptions
from .file_job import CacheSettings, OutputSettings, run_file_job


def restore_file(src: str, dst: str, settings: RestoreSettings = RestoreSettings(),
                 models: RestoreModels | None = None, options: LoadOptions | None = None, fmt: str | None = None,
                 crf: int = 18, overwrite: bool = False, cache_dir: str | None = None, keep_cache: bool = False,
                 chunk_frames: int = 1, workers: int = 0, ray_address: str | None = None,
                 worker_threads: int = 1, worker_models: dict | None = None,
                 reporter: Reporter | None = None) -> int:
    """Restore a video file or frame folder into `dst`; returns the frame count.

    Finished segments are kept, encoded, in `cache_dir` (default: a hidden
    folder beside `dst`) until the output is complete, then removed unless
    `keep_cache`. A diffusion segment is expensive, so by default every
    segment closes a chunk (`chunk_frames=1`): a cancel loses at most one.
    `workers` > 0 runs the segments on that many Ray actors, each loading
    its own models with `load_restore_models(settings.scale, **worker_models)`
    (files, device, ...) and `worker_threads` threads; it needs
    `settings.seams == "independent"`, whose frames are the same for any
    number of workers.
    """
    reporter = get_reporter(reporter)
    if workers:
        if settings.seams != "independent":
            raise InputError(f"workers={workers} needs seams='independent' (segments sampled alone), not "
                             f"{settings.seams!r}: a carried seam makes each segment wait for the one before")
        if models is not None:
            raise InputError("workers load their own models: pass worker_models (load_restore_models' "
                             "arguments), not models")
        from .distributed import resolve_ray_address
        resolve_ray_address(ray_address)          # a wrong address fails in seconds, before any work
        worker_models = dict(worker_models or {})
        files = {k: worker_models.get(k) for k in ("diffusion", "vae", "upscaler", "refiner")}
        model_files = restore_model_files(restore_model_paths(settings.scale, **files))
    else:
        models = models or load_restore_models(settings.scale)
        model_files = models.files
    key = {"command": "restore", "settings": dataclasses.asdict(settings), "models": model_files}
    if workers:
        key["distributed"] = {"threads_per_worker": worker_threads}
    cache = CacheSettings(key=key, folder=cache_dir, keep=keep_cache, chunk_frames=chunk_frames)
    current = {"settings": settings}

    def process(lr, lead, state, export, first_frame):
        (out, new_state), current["settings"] = restore_segment_fitting(lr, lead, models, current["settings"],
                                                                        state, first_frame, export, reporter)
        return out, new_state

    def work(reader, resume, consumer_state):
        chunks = (thwc_to_tchw(uint8_to_float(batch)) for batch in reader.windows(settings.segment))
        if not workers:
            for segment in run_segments(chunks, process, settings.segment, settings.segment_overlap, reporter,
                                        resume):
                yield segment, segment.frames_uint8(), {}
            return
        from .distributed import RayPool, SegmentWorker
        pool = RayPool(workers, ray_address, SegmentWorker, (worker_models, settings, worker_threads),
                       worker_threads)
        try:
            for segment in run_segments_in_parallel(chunks, pool.submit, pool.collect, settings.segment,
                                                    settings.segment_overlap, reporter, resume,
                                                    in_flight=2 * workers):
                yield segment, segment.frames_uint8(), {}
        finally:
            pool.close()

    return run_file_job(src, OutputSettings(dst, fmt, crf, overwrite), work, options, cache, reporter,
                        f"restore x{settings.scale} (diffusion)" + (f" on {workers} Ray workers" if workers else ""))
