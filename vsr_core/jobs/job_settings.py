"""What every file job (upscale, restore) is told besides its own settings: which frames to read, how to
write, where to keep the resume cache, and where to run. Declared once for both commands."""
from __future__ import annotations

from dataclasses import dataclass

from ..settings import check_settings, group, setting
from ..video import FORMATS, LoadOptions

CHUNK_FRAMES = 48      # frames per cached chunk of a long upscale: a cancel loses at most this many


@dataclass(frozen=True)
class JobSettings:
    load: LoadOptions = group(LoadOptions)
    format: str | None = setting(None, "output format (default: h264 for a video path, png for a folder)",
                                 choices=FORMATS)
    crf: int = setting(18, "h264 quality, 0 (lossless) to 51; 18 looks lossless",
                       min=0, max=51)
    overwrite: bool = setting(False, "replace OUTPUT if it exists")
    cache_dir: str | None = setting(None, "where finished windows are kept until OUTPUT is complete, so running "
                                          "the same command again after a cancel or crash resumes (default: a "
                                          "hidden folder beside OUTPUT)")
    keep_cache: bool = setting(False, "keep the cache after success")
    chunk_frames: int | None = setting(None, "frames per cached chunk, encoded like the output: a cancel loses "
                                             "at most one chunk; longer chunks compress better (default: 48 for "
                                             "upscale, at most a quarter of a short clip; 1 segment for restore)",
                                       min=1, max=100_000)
    workers: int = setting(0, "run the windows (restore: segments) on N Ray workers, --threads each (optional: "
                              "pip install \"ray[default]\"); the frames are the same for any N", min=0, max=1024)
    ray_address: str | None = setting(None, "join an existing Ray cluster (e.g. auto, or HOST:6379); default: "
                                            "start a local one")
    threads: int = setting(0, "CPU threads (0: upscale takes the cores other processes leave free, measured at "
                              "start, at least 1 (on a busy 2-core machine 1 thread was 2.3x faster than 2); "
                              "restore keeps PyTorch's default)", min=0, max=4096)

    def __post_init__(self):
        check_settings(self)

    @property
    def worker_threads(self) -> int:
        return self.threads or 1
