"""`restore`: the whole diffusion graph over a video file or frame folder, in segments, resumable."""
from __future__ import annotations

import dataclasses

from ..checkpoints.restore_models import (RestoreModels, RestoreModelSettings, load_restore_models,
                                          restore_model_files, restore_model_paths)
from ..errors import InputError
from ..ops.frames import thwc_to_tchw, uint8_to_float
from ..pipeline.restore_video import RestoreSettings, restore_segment_fitting
from ..pipeline.segments import run_segments, run_segments_in_parallel
from ..progress import Reporter, get_reporter
from ..video.writer import validate_output
from .file_job import CacheSettings, OutputSettings, check_job_paths, run_file_job
from .job_settings import JobSettings


def restore_file(src: str, dst: str, settings: RestoreSettings = RestoreSettings(), job: JobSettings = JobSettings(),
                 models: RestoreModels | None = None, model_files: RestoreModelSettings = RestoreModelSettings(),
                 reporter: Reporter | None = None) -> int:
    """Restore a video file or frame folder into `dst`; returns the frame count.

    `models`: the graph's networks already loaded (the streaming node's); otherwise they are loaded from
    `model_files` (given files, else the shipped ones; checkpoints.restore_models) once paths and output
    are checked. Finished segments are kept, encoded, in `job.cache_dir` (default: a hidden
    folder beside `dst`) until the output is complete, then removed unless
    `job.keep_cache`. A diffusion segment is expensive, so by default every
    segment closes a chunk (`job.chunk_frames` 1): a cancel loses at most one.
    `job.workers` > 0 runs the segments on that many Ray actors, each loading
    its own models from `model_files` with `job.threads` threads; it needs
    `settings.seams` "independent" (the default with workers), whose frames are the same for any
    number of workers.
    """
    reporter = get_reporter(reporter)
    settings = settings.for_workers(job.workers)
    check_job_paths(src, dst, job.cache_dir)            # before minutes of model loading
    validate_output(dst, job.format, job.crf, job.overwrite)
    load = dataclasses.asdict(model_files)
    if job.workers:
        if settings.seams != "independent":
            raise InputError(f"workers={job.workers} needs seams='independent' (segments sampled alone), not "
                             f"{settings.seams!r}: a carried seam makes each segment wait for the one before")
        if models is not None:
            raise InputError("workers load their own models: pass model_files, not models")
        from .distributed import resolve_ray_address
        resolve_ray_address(job.ray_address)          # a wrong address fails in seconds, before any work
        files = {k: load[k] for k in ("diffusion", "vae", "upscaler", "refiner")}
        model_files_key = restore_model_files(restore_model_paths(settings.scale, **files))
    else:
        models = models or load_restore_models(settings.scale, **load)
        model_files_key = models.files
    key = {"command": "restore", "settings": dataclasses.asdict(settings), "models": model_files_key}
    if job.workers:
        key["distributed"] = {"threads_per_worker": job.worker_threads}
    cache = CacheSettings(key=key, folder=job.cache_dir, keep=job.keep_cache, chunk_frames=job.chunk_frames or 1)
    work = _segments_work(settings, models, job, load, reporter)
    return run_file_job(src, OutputSettings(dst, job.format, job.crf, job.overwrite), work, job.load, cache,
                        reporter, f"restore x{settings.scale} (diffusion)"
                        + (f" on {job.workers} Ray workers" if job.workers else ""))


def _segments_work(settings: RestoreSettings, models: RestoreModels | None, job: JobSettings, load: dict,
                   reporter: Reporter):
    """The file job's work: segments restored here (shrinking after running out of memory, the settings
    that fitted kept for later segments) or on Ray workers."""
    current = {"settings": settings}

    def process(lr, lead, state, export, first_frame):
        (out, new_state), current["settings"] = restore_segment_fitting(lr, lead, models, current["settings"],
                                                                        state, first_frame, export, reporter)
        return out, new_state

    def work(reader, resume, consumer_state):
        chunks = (thwc_to_tchw(uint8_to_float(batch)) for batch in reader.windows(settings.segment))
        if not job.workers:
            for segment in run_segments(chunks, process, settings.segment, settings.segment_overlap, reporter,
                                        resume):
                yield segment, segment.frames_uint8(), {}
            return
        from .distributed import RayPool, SegmentWorker
        pool = RayPool(job.workers, job.ray_address, SegmentWorker, (load, settings, job.worker_threads),
                       job.worker_threads)
        try:
            for segment in run_segments_in_parallel(chunks, pool.submit, pool.collect, settings.segment,
                                                    settings.segment_overlap, reporter, resume,
                                                    in_flight=2 * job.workers):
                yield segment, segment.frames_uint8(), {}
        finally:
            pool.close()
    return work
