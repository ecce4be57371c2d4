"""Finished frames of a long job, kept encoded on disk so a cancelled or crashed run resumes.

The output is built from *chunks*: consecutive segments' frames encoded with
the output's own format and settings (h264 at the output's CRF, FFV1, or PNG
frames), each chunk closed at a segment boundary once it holds at least
``chunk_frames`` frames. The final output is the chunks' packets copied one
after another, so the cache costs about what the output costs, and a resumed
run gives exactly the frames an uninterrupted run gives (the chunk
boundaries do not depend on where a run stopped). Beside the latest chunk
lies the small float state needed to continue: the segment tail still to be
crossfaded, the runner's state, and the consumer's (e.g. the stabiliser's).

Folder layout: ``job.json`` (the job's content key), ``job.lock``,
``chunk_NNNNNN.<ext>`` (or a PNG folder), ``chunk_NNNNNN.json`` (written last:
the chunk is complete), ``state_NNNNNN.safetensors`` (latest chunk only).
Only files matching these names are ever deleted.
"""
from __future__ import annotations

import json
import os
import re

import av
import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ..errors import InputError, OutputError
from ..pipeline.segments import Resume, SegmentResult
from ..progress import Reporter, get_reporter
from ..video import VideoWriter, atomic
from .lock import JobLock

JOB_FILE = "job.json"
LOCK_FILE = "job.lock"
_OURS = re.compile(r"^(job\.json(\.tmp)?|chunk_\d{6}(\.mp4|\.mkv|\.mov)?(\.json(\.tmp)?)?"
                   r"|state_\d{6}\.safetensors(\.tmp)?"
                   r"|\.chunk_\d{6}\.partial-[0-9a-f]{8}(\.mp4|\.mkv|\.mov)?(\.old)?)$")
CHUNK_EXT = {"png": ""}


def default_cache_dir(output: str) -> str:
    """A hidden folder beside the output: `.NAME.vsr-cache`."""
    folder, name = os.path.split(os.path.abspath(output))
    return os.path.join(folder, f".{name}.vsr-cache")


def _write_json(path: str, data) -> None:
    with open(path + ".tmp", "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
    os.replace(path + ".tmp", path)


def _read_json(path: str):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


class ChunkCache:
    """``writer`` holds the VideoWriter settings of the output (fps, fmt, crf, colour, timestamps)."""

    def __init__(self, folder: str, key: dict, writer: dict, chunk_frames: int = 48, output_ext: str = ".mkv",
                 reporter: Reporter | None = None):
        if not isinstance(chunk_frames, int) or chunk_frames < 1:
            raise InputError(f"chunk_frames={chunk_frames!r}; expected an integer >= 1")
        self.folder = os.path.abspath(folder)
        self.key = json.loads(json.dumps(key, sort_keys=True, default=str))
        self.writer, self.chunk_frames = writer, chunk_frames
        self.ext = CHUNK_EXT.get(writer["fmt"], output_ext)
        self.reporter = get_reporter(reporter)
        self._open_folder()
        self.lock = JobLock(os.path.join(self.folder, LOCK_FILE), f"cache folder '{self.folder}'").acquire()
        try:
            previous = _read_json(os.path.join(self.folder, JOB_FILE))
            if previous not in (None, self.key):
                self.reporter.log(f"cache {self.folder} holds another job's chunks (input, settings or models "
                                  f"differ); starting over")
                self._remove(lambda name: True)
            _write_json(os.path.join(self.folder, JOB_FILE), self.key)
            self.chunks: list[dict] = []
            self.resume, self.consumer_state = self._find_resume()
            if previous == self.key and not self.chunks:
                self.reporter.log(f"cache {self.folder} holds no finished chunk of this job (the last run "
                                  f"stopped before one was complete); starting from the first frame")
        except BaseException:
            self.lock.release()
            raise
        self._open: VideoWriter | None = None
        self._open_first = self.chunks[-1]["first_frame"] + self.chunks[-1]["frames"] if self.chunks else 0
        self._previous_state: int | None = len(self.chunks) - 1 if self.chunks else None

    # -- opening ---------------------------------------------------------
    def _open_folder(self) -> None:
        if os.path.exists(self.folder) and not os.path.isdir(self.folder):
            raise OutputError(f"cache folder '{self.folder}' is a file; expected a folder (choose another "
                              f"--cache-dir)")
        if os.path.isdir(self.folder):
            names = os.listdir(self.folder)
            if names and JOB_FILE not in names and LOCK_FILE not in names:
                raise InputError(f"cache folder '{self.folder}' holds files that are not a job cache; expected an "
                                 f"empty or new folder (choose another --cache-dir)")
            return
        parent = os.path.dirname(self.folder)
        if not os.path.isdir(parent):
            raise OutputError(f"cache folder's parent '{parent}' does not exist; create it first")
        try:
            os.mkdir(self.folder)
        except OSError as err:
            raise OutputError(f"cannot create cache folder '{self.folder}': {err.strerror}; expected a writable "
                              f"place (choose another --cache-dir)") from None

    def _chunk_path(self, k: int) -> str:
        return os.path.join(self.folder, f"chunk_{k:06d}{self.ext}")

    def _state_path(self, k: int) -> str:
        return os.path.join(self.folder, f"state_{k:06d}.safetensors")

    def _chunk_ok(self, k: int, meta: dict) -> bool:
        path = self._chunk_path(k)
        try:
            if self.ext == "":
                return len([n for n in os.listdir(path) if n.endswith(".png")]) == meta["frames"]
            with av.open(path) as c:
                return sum(1 for p in c.demux(c.streams.video[0]) if p.size) == meta["frames"]
        except (OSError, av.error.FFmpegError, IndexError, KeyError):
            return False

    def _find_resume(self) -> tuple[Resume | None, dict]:
        k, first = 0, 0
        while True:
            meta = _read_json(os.path.join(self.folder, f"chunk_{k:06d}.json"))
            if not meta or meta.get("first_frame") != first or not self._chunk_ok(k, meta):
                break
            self.chunks.append(meta)
            first += meta["frames"]
            k += 1
        resume, consumer = None, {}
        if self.chunks:
            try:
                state = load_file(self._state_path(k - 1))
            except Exception as err:  # noqa: BLE001 - a damaged state means starting over, never a crash
                self.reporter.log(f"cache state {self._state_path(k - 1)} is unreadable ({err}); starting over")
                self.chunks = []
            else:
                meta = self.chunks[-1]
                runner = {n[6:]: v for n, v in state.items() if n.startswith("state.")}
                consumer = {n[9:]: v for n, v in state.items() if n.startswith("consumer.")}
                previous = SegmentResult(torch.zeros(0), state.get("tail"), runner, meta["last_segment"],
                                         meta["first_frame"])
                resume = Resume(meta["last_segment"] + 1, first, previous, finished=bool(meta["final"]))
        keep = {f"chunk_{i:06d}{self.ext}" for i in range(len(self.chunks))} | {
            f"chunk_{i:06d}.json" for i in range(len(self.chunks))}
        if self.chunks:
            keep.add(os.path.basename(self._state_path(len(self.chunks) - 1)))
        self._remove(lambda name: name not in keep and name != JOB_FILE)
        if self.chunks:
            self.reporter.log(f"resuming: {first} finished frame(s) in {len(self.chunks)} chunk(s) found in "
                              f"{self.folder}")
        return resume, consumer

    def _remove(self, which) -> None:
        for name in os.listdir(self.folder):
            if _OURS.match(name) and which(name):
                atomic.discard(os.path.join(self.folder, name))

    # -- writing ---------------------------------------------------------
    def add(self, result: SegmentResult, frames_uint8: np.ndarray, consumer_state: dict | None = None) -> None:
        """Append a finished segment's 8-bit frames; close the chunk at this boundary when it is full."""
        if self._open is None:
            k = len(self.chunks)
            w = self.writer
            self._open = VideoWriter(self._chunk_path(k), w["fps"], fmt=w["fmt"], crf=w["crf"], overwrite=True,
                                     colour=w.get("colour"), timestamps=w.get("timestamps"),
                                     first_frame=self._open_first)
        self._open.write(frames_uint8)
        if result.last or self._open.frame_count >= self.chunk_frames:
            self._close_chunk(result, consumer_state or {})

    def _close_chunk(self, result: SegmentResult, consumer_state: dict) -> None:
        k = len(self.chunks)
        frames = self._open.close()
        self._open = None
        tensors = {} if result.tail is None else {"tail": result.tail.contiguous()}
        tensors.update({f"state.{n}": v.detach().cpu().contiguous() for n, v in result.state.items()})
        tensors.update({f"consumer.{n}": v.detach().cpu().contiguous() for n, v in consumer_state.items()})
        state = self._state_path(k)
        save_file(tensors, state + ".tmp")
        os.replace(state + ".tmp", state)
        meta = {"first_frame": self._open_first, "frames": frames, "last_segment": result.index,
                "final": result.last}
        _write_json(os.path.join(self.folder, f"chunk_{k:06d}.json"), meta)
        self.chunks.append(meta)
        self._open_first += frames
        if self._previous_state is not None:      # only the latest state is needed to continue
            os.remove(self._state_path(self._previous_state))
        self._previous_state = k

    def chunk_paths(self) -> list[str]:
        return [self._chunk_path(k) for k in range(len(self.chunks))]

    def close(self) -> None:
        """Drop an unfinished chunk and release the lock (the finished chunks stay for resuming)."""
        if self._open is not None:
            self._open.abort()
            self._open = None
        self.lock.release()

    def clear(self) -> None:
        """Remove this job's files (after the output was renamed into place), and the folder if then empty."""
        self._remove(lambda name: True)
        self.close()
        if os.path.isdir(self.folder) and not os.listdir(self.folder):
            os.rmdir(self.folder)
