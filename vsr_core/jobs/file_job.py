"""Run a file-to-file job safely: checked paths, one job per output, a resumable cache, atomic output.

Order of events (everything that can be refused is refused before any work):
paths resolved through links and checked (output is not the input; input,
output and cache do not contain one another; folder output rules; a cache
folder holds nothing foreign; writable), input opened (damaged files
reported), output locked (a second job on the same output is told who holds
it), an output parked by a job killed mid-replacement put back, stale
temporaries of dead jobs of this output removed, cache opened and locked,
then the work. SIGTERM is handled like Ctrl-C: the partial output is
discarded and finished chunks stay cached. A full disk is one line.
"""
from __future__ import annotations

import dataclasses
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
from ..safe_files import DISK_ERRNOS, check_apart, resolve
from ..video import LoadOptions, VideoWriter, atomic, open_video
from ..video.writer import validate_output
from .chunk_cache import ChunkCache, check_cache_folder, default_cache_dir
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
    return resolve(a) == resolve(b)


def cache_folder(dst: str, cache_dir: str | None) -> str:
    """The cache folder, resolved: a given one is followed through links; the default one (a hidden name
    beside the output, which anyone who can write there could plant as a link) must not be a link."""
    if cache_dir:
        return resolve(cache_dir)
    folder = default_cache_dir(resolve(dst))
    if os.path.islink(folder):
        raise OutputError(f"cache folder '{folder}' is a symbolic link, not a folder this job made; remove it "
                          f"or choose --cache-dir")
    return folder


def check_job_paths(src: str, dst: str, cache_dir: str | None) -> None:
    """Refuse, before any work, an output or cache that is (or would overwrite, hold or lie inside) the input,
    or each other."""
    if not os.path.exists(src):
        return                                   # the reader names a missing input
    if _same_file(src, dst):
        raise OutputError(f"output '{dst}' is the input itself; expected a different path (the source "
                          f"would be replaced)")
    if cache_dir and (_same_file(src, cache_dir) or _same_file(dst, cache_dir)):
        raise OutputError(f"cache folder '{cache_dir}' is the input or the output; expected a folder of its own")
    check_apart({"output": dst, "input": src, "cache folder": cache_dir})


def output_lock_path(dst: str) -> str:
    folder, name = os.path.split(resolve(dst))
    return os.path.join(folder, f".{name}.vsr-lock")


def remove_stale_partials(dst: str, reporter: Reporter) -> None:
    """Temporaries of this output left by killed jobs (we hold the output's lock: none is live)."""
    folder = os.path.dirname(dst)
    pattern = atomic.partial_pattern(dst)
    for name in os.listdir(folder):
        if not pattern.match(name) or name.endswith(".old"):     # parked outputs: atomic.recover_parked
            continue
        if atomic.unfinished_output(os.path.join(folder, name)):
            atomic.discard(os.path.join(folder, name))
            reporter.log(f"removed '{name}', left by an earlier run that was killed")
        else:
            reporter.log(f"kept '{name}': named like an unfinished output of this job but holds other files")


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
def disk_errors(what: str, after: str = "free space or choose another place"):
    """A full disk, quota, read-only or forbidden place: one line naming what could not be written."""
    try:
        yield
    except OSError as err:
        if err.errno not in (*DISK_ERRNOS, errno.EACCES):     # also safe_files' own one-line disk errors
            raise
        raise OutputError(f"cannot write {what}: {os.strerror(err.errno)}; the output was not replaced "
                          f"({after})") from None


def run_file_job(src: str, output: OutputSettings, work: Work, options: LoadOptions | None = None,
                 cache: CacheSettings | None = None, reporter: Reporter | None = None, title: str = "",
                 prepare: Callable | None = None) -> int:
    """Read `src`, run `work`, write the output atomically; returns the frame count.

    ``prepare(reader, cache)``, once the input is open and before anything is locked or written, may refuse
    the job or settle settings that depend on the input (its size: the memory plan) in the job's own
    CacheSettings (``cache``, with its folder resolved; None without a cache): key and chunk length."""
    reporter = get_reporter(reporter)
    output = dataclasses.replace(output, path=resolve(output.path))     # decide on what a link points to
    if cache is not None:
        cache = dataclasses.replace(cache, folder=cache_folder(output.path, cache.folder))
    check_job_paths(src, output.path, cache.folder if cache else None)
    if cache is not None:
        check_cache_folder(cache.folder)
    fmt = validate_output(output.path, output.fmt, output.crf, output.overwrite)
    reader = open_video(src, options)
    if prepare is not None:
        prepare(reader, cache)
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
            for message in atomic.recover_parked(output.path):
                reporter.log(message)
                validate_output(output.path, output.fmt, output.crf, output.overwrite)
            remove_stale_partials(output.path, reporter)
            start = lambda: reporter.start(reader.expected_frames or 0, title)   # noqa: E731
            if cache is None:
                start()
                with VideoWriter(output.path, reporter=reporter, audio=reader.audio, overwrite=output.overwrite,
                                 **writer_settings) as writer:
                    for _, frames, _ in work(reader, None, {}):
                        writer.write(frames)
                count = writer.frame_count
            else:
                count = _cached(reader, src, output, cache, writer_settings, work, reporter, start, kept)
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
            reporter: Reporter, start: Callable[[], None], kept: dict) -> int:
    key = {"version": 2, "input": source_identity(src), "options": _options(reader.options),
           "output": {"fmt": writer_settings["fmt"], "crf": output.crf, "chunk_frames": cache.chunk_frames},
           **cache.key}
    with disk_errors(f"the cache folder '{cache.folder}'", "finished chunks are kept: free space and run the "
                                                           "same command again to resume"):
        store = ChunkCache(cache.folder, key, writer_settings, cache.chunk_frames,
                           os.path.splitext(output.path)[1].lower() or ".mkv", reporter)
    start()                   # after the cache is opened: a refused cache is one line, not a progress bar
    try:
        if store.resume is not None:
            reporter.update(store.resume.first_frame)
        with disk_errors(f"the cache folder '{store.folder}'", "finished chunks are kept: free space and run "
                                                                 "the same command again to resume"):
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
    return {k: str(v) for k, v in dataclasses.asdict(options).items()}

