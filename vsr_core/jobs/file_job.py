"""Run a file-to-file job safely: checked paths, one job per output, a resumable cache, atomic output.

Order of events (everything that can be refused is refused before any work):
paths checked (output is not the input, folder output rules, writable),
input opened (damaged files reported), output locked (a second job on the
same output is told who holds it), stale temporaries of dead jobs of this
output removed, cache opened and locked, then the work. SIGTERM is handled
like Ctrl-C: the partial output is discarded and finished chunks stay cached.
"""
from __future__ import annotations

import errno
import os
import signal
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np

from ..errors import Interrupted, OutputError
from ..file_identity import source_identity
from ..pipeline.segments import SegmentResult
from ..progress import Reporter, get_reporter
from ..video import LoadOptions, VideoWriter, atomic, open_video
from ..video.writer import validate_output
from .chunk_cache import ChunkCache, default_cache_dir
from .lock import JobLock

# work(reader, resume, consumer_state) yields each finished segment, its 8-bit frames and the consumer state
# to cache; resume (None to start) and consumer_state ({} to start) come from the cache
Work = Callable[..., Iterator[tuple[SegmentResult, np.ndarray, dict]]]


@dataclass
class OutputSettings:
    path: str
    fmt: str | None = None
    crf: int = 18
    overwrite: bool = False


@dataclass
class CacheSettings:
    key: dict                       # the job's settings and model files (the input is added here)
    folder: str | None = None       # default: a hidden folder beside the output
    keep: bool = False
    chunk_frames: int = 48


def _same_file(a: str, b: str) -> bool:
    if os.path.exists(a) and os.path.exists(b):
        return os.path.samefile(a, b)
    return os.path.realpath(a) == os.path.realpath(b)


def check_job_paths(src: str, dst: str, cache_dir: str | None) -> None:
    """Refuse, before any work, an output or cache that is (or would overwrite) the input."""
    if not os.path.exists(src):
        return                                   # the reader names a missing input
    if _same_file(src, dst):
        raise OutputError(f"output '{dst}' is the input itself; expected a different path (the source "
                          f"would be replaced)")
    if cache_dir and (_same_file(src, cache_dir) or _same_file(dst, cache_dir)):
        raise OutputError(f"cache folder '{cache_dir}' is the input or the output; expected a folder of its own")


def output_lock_path(dst: str) -> str:
    folder, name = os.path.split(os.path.abspath(dst))
    return os.path.join(folder, f".{name}.vsr-lock")


def remove_stale_partials(dst: str, reporter: Reporter) -> None:
    """Temporaries of this output left by killed jobs (we hold the output's lock: none is live)."""
    folder = os.path.dirname(os.path.abspath(dst))
    pattern = atomic.partial_pattern(dst)
    for name in os.listdir(folder):
        if pattern.match(name):
            atomic.discard(os.path.join(folder, name))
            reporter.log(f"removed '{name}', left by an earlier run that was killed")


@contextmanager
def sigterm_as_interrupt():
    """SIGTERM (a closed terminal, a job scheduler) cleans up like Ctrl-C instead of killing mid-write."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise Interrupted("terminated (SIGTERM); finished chunks are kept for resuming")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def disk_errors(what: str):
    try:
        yield
    except OSError as err:
        if isinstance(err, OutputError) or err.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES):
            raise
        raise OutputError(f"cannot write {what}: {os.strerror(err.errno)}; the output was not replaced "
                          f"(free space or choose another place)") from None


def run_file_job(src: str, output: OutputSettings, work: Work, options: LoadOptions | None = None,
                 cache: CacheSettings | None = None, reporter: Reporter | None = None, title: str = "",
                 prepare: Callable | None = None) -> int:
    """Read `src`, run `work`, write the output atomically; returns the frame count.

    ``prepare(reader)``, once the input is open and before anything is locked or written, may refuse the
    job or settle settings that depend on the input (its size: the memory plan), cache.key included."""
    reporter = get_reporter(reporter)
    check_job_paths(src, output.path, cache.folder if cache else None)
    fmt = validate_output(output.path, output.fmt, output.crf, output.overwrite)
    reader = open_video(src, options)
    if prepare is not None:
        prepare(reader)
    for warning in reader.warnings:
        reporter.log(warning)
    logged = len(reader.warnings)
    writer_settings = {"fps": reader.fps, "fmt": fmt, "crf": output.crf, "colour": lambda: reader.colour,
                       "timestamps": reader.timestamp if reader.variable_rate else None}
    if reader.variable_rate:
        reporter.log(f"'{src}' has a variable frame rate: each frame keeps its own time")
    existed, kept = os.path.exists(output.path), {}
    try:
        with JobLock(output_lock_path(output.path), f"output '{output.path}'"), sigterm_as_interrupt(), \
                disk_errors(f"'{output.path}'"):
            remove_stale_partials(output.path, reporter)
            reporter.start(reader.expected_frames or 0, title)
            if cache is None:
                with VideoWriter(output.path, reporter=reporter, audio=reader.audio, overwrite=output.overwrite,
                                 **writer_settings) as writer:
                    for _, frames, _ in work(reader, None, {}):
                        writer.write(frames)
                count = writer.frame_count
            else:
                count = _cached(reader, src, output, cache, writer_settings, work, reporter, kept)
    except (KeyboardInterrupt, Interrupted) as err:
        raise Interrupted(interrupted_message(str(err), output.path, existed, kept)) from None
    for warning in reader.warnings[logged:]:    # found while decoding (allow_damaged)
        reporter.log(warning)
    return count


def interrupted_message(why: str, dst: str, existed: bool, kept: dict) -> str:
    """What a cancelled job leaves: the output as it was (or none), the finished frames kept for a rerun."""
    if kept.get("frames"):
        text = (f"{kept['frames']} finished frame(s) are kept in '{kept['folder']}'; run the same command "
                f"again to resume from there")
    elif kept:
        text = "no chunk of frames was finished yet; running the same command again starts from the beginning"
    else:
        text = "nothing is kept; running the same command again starts from the beginning"
    text = f"{text}; '{dst}' " + ("is unchanged" if existed else "was not written")
    return f"{why.split(';')[0]}; {text}" if why else text


def _cached(reader, src, output: OutputSettings, cache: CacheSettings, writer_settings: dict, work: Work,
            reporter: Reporter, kept: dict) -> int:
    key = {"version": 2, "input": source_identity(src), "options": _options(reader.options),
           "output": {"fmt": writer_settings["fmt"], "crf": output.crf, "chunk_frames": cache.chunk_frames},
           **cache.key}
    folder = cache.folder or default_cache_dir(output.path)
    store = ChunkCache(folder, key, writer_settings, cache.chunk_frames,
                       os.path.splitext(output.path)[1].lower() or ".mkv", reporter)
    try:
        if store.resume is not None:
            reporter.update(store.resume.first_frame)
        for result, frames, consumer in work(reader, store.resume, store.consumer_state):
            store.add(result, frames, consumer)
        with VideoWriter(output.path, writer_settings["fps"], fmt=writer_settings["fmt"], crf=output.crf,
                         audio=reader.audio, overwrite=output.overwrite, reporter=reporter,
                         timestamps=writer_settings["timestamps"]) as writer:
            for chunk in store.chunk_paths():
                writer.append_encoded(chunk)
    except BaseException:
        kept.update(folder=store.folder, frames=sum(chunk["frames"] for chunk in store.chunks))
        store.close()
        raise
    if cache.keep:
        store.close()
    else:
        store.clear()
    return writer.frame_count


def _options(options: LoadOptions) -> dict:
    import dataclasses
    return {k: str(v) for k, v in dataclasses.asdict(options).items()}

