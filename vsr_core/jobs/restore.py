"""`restore`: the whole diffusion graph over a video file or frame folder, in segments, resumable."""
from __future__ import annotations

import dataclasses

from ..frames import thwc_to_tchw, uint8_to_float
from ..pipeline.memory_fallback import retry_on_oom
from ..pipeline.restore_video import (RestoreModels, RestoreSettings, load_restore_models, restore_segment,
                                      seam_from_state, seam_state, shrink)
from ..pipeline.segments import run_segments
from ..progress import Reporter, get_reporter
from ..video import LoadOptions
from .file_job import CacheSettings, OutputSettings, run_file_job


def restore_file(src: str, dst: str, settings: RestoreSettings = RestoreSettings(),
                 models: RestoreModels | None = None, options: LoadOptions | None = None, fmt: str | None = None,
                 crf: int = 18, overwrite: bool = False, cache_dir: str | None = None, keep_cache: bool = False,
                 chunk_frames: int = 1, reporter: Reporter | None = None) -> int:
    """Restore a video file or frame folder into `dst`; returns the frame count.

    Finished segments are kept, encoded, in `cache_dir` (default: a hidden
    folder beside `dst`) until the output is complete, then removed unless
    `keep_cache`. A diffusion segment is expensive, so by default every
    segment closes a chunk (`chunk_frames=1`): a cancel loses at most one.
    """
    reporter = get_reporter(reporter)
    models = models or load_restore_models(settings.scale)
    cache = CacheSettings(key={"command": "restore", "settings": dataclasses.asdict(settings),
                               "models": models.files}, folder=cache_dir, keep=keep_cache, chunk_frames=chunk_frames)
    current = {"settings": settings}

    def process(lr, lead, state, export, first_frame):
        def attempt(s: RestoreSettings):
            seam = seam_from_state(state, first_frame, export)
            return restore_segment(lr, lead, models, s, seam, reporter), seam_state(seam)
        (out, new_state), current["settings"] = retry_on_oom(attempt, current["settings"], shrink,
                                                             f"segment at frame {first_frame}", reporter)
        return out, new_state

    def work(reader, resume, consumer_state):
        chunks = (thwc_to_tchw(uint8_to_float(batch)) for batch in reader.windows(settings.segment))
        for segment in run_segments(chunks, process, settings.segment, settings.segment_overlap, reporter, resume):
            yield segment, segment.frames_uint8(), {}

    return run_file_job(src, OutputSettings(dst, fmt, crf, overwrite), work, options, cache,
                        reporter, f"restore x{settings.scale} (diffusion)")
