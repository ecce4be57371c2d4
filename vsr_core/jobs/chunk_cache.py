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

Folder layout: ``job.json`` (the manifest: this pack's mark, the job's
content key and its SHA-256), ``job.lock``, ``chunk_NNNNNN.<ext>`` (or a PNG
folder), ``chunk_NNNNNN.json`` (written last: the chunk is complete; it holds
the job's key hash and the SHA-256 of the chunk and of its state),
``state_NNNNNN.safetensors`` (latest chunk only).

What the cache trusts and deletes: a folder is used only when it is new,
empty, or carries this pack's ``job.json`` and nothing but the cache's own
file names (anything else is the user's: the folder is refused, nothing is
touched). A chunk is used only when its record names this job and its bytes
match the recorded SHA-256, when resuming and again before it is copied into
the output; a chunk that fails (damaged, or swapped in from another job's
cache) is discarded and recomputed. At the end the job deletes the files it
recorded, never a name it did not write.
"""
from __future__ import annotations

import hashlib
import json
import os
import re

import av
import numpy as np
import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from ..errors import InputError, OutputError
from ..pipeline.segments import Resume, SegmentResult
from ..progress import Reporter, get_reporter
from ..safe_files import read_json, resolve, tree_sha256, write_atomic
from ..video import VideoWriter, atomic
from .lock import JobLock

JOB_FILE = "job.json"
LOCK_FILE = "job.lock"
MADE_BY = "vsr_core chunk cache"
_NAMES = r"job\.json|chunk_\d{6}\.json|state_\d{6}\.safetensors"
_OURS = re.compile(rf"^(job\.json|chunk_\d{{6}}(\.mp4|\.mkv|\.mov)?(\.json)?|state_\d{{6}}\.safetensors"
                   rf"|({_NAMES})\.tmp|\.({_NAMES})\.[a-z0-9_]{{8}}\.tmp"
                   rf"|\.chunk_\d{{6}}\.partial-[0-9a-f]{{8}}(\.mp4|\.mkv|\.mov)?(\.old)?)$")
CHUNK_EXT = {"png": ""}


def default_cache_dir(output: str) -> str:
    """A hidden folder beside the output: `.NAME.vsr-cache`."""
    folder, name = os.path.split(os.path.abspath(output))
    return os.path.join(folder, f".{name}.vsr-cache")


def _write_json(path: str, data) -> None:
    write_atomic(path, json.dumps(data, indent=1, sort_keys=True))


def _is_ours(job) -> bool:
    """This pack's manifest (or the plain key dict of the previous cache version)."""
    return isinstance(job, dict) and (job.get("made_by") == MADE_BY or {"version", "input", "output"} <= set(job))


def check_cache_folder(folder: str) -> bool:
    """Refuse a cache folder that is a file or holds anything but this pack's cache; True if it exists."""
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise OutputError(f"cache folder '{folder}' is a file; expected a folder (choose another --cache-dir)")
    if not os.path.isdir(folder):
        return False
    ours = _is_ours(read_json(os.path.join(folder, JOB_FILE)))
    foreign = sorted(n for n in os.listdir(folder) if n != LOCK_FILE and not (ours and _OURS.match(n)))
    if foreign:
        raise OutputError(f"cache folder '{folder}' holds files this pack did not write ({', '.join(foreign[:3])}"
                          f"{', ...' if len(foreign) > 3 else ''}); expected an empty or new folder, or a cache an "
                          f"earlier run made (nothing was touched; choose another --cache-dir)")
    return True


class ChunkCache:
    """``writer`` holds the VideoWriter settings of the output (fps, fmt, crf, colour, timestamps)."""

    def __init__(self, folder: str, key: dict, writer: dict, chunk_frames: int = 48, output_ext: str = ".mkv",
                 reporter: Reporter | None = None):
        if not isinstance(chunk_frames, int) or chunk_frames < 1:
            raise InputError(f"chunk_frames={chunk_frames!r}; expected an integer >= 1")
        self.folder = resolve(folder)
        self.key = json.loads(json.dumps(key, sort_keys=True, default=str))
        self.key_sha = hashlib.sha256(json.dumps(self.key, sort_keys=True).encode()).hexdigest()
        self.writer, self.chunk_frames = writer, chunk_frames
        self.ext = CHUNK_EXT.get(writer["fmt"], output_ext)
        self.reporter = get_reporter(reporter)
        self._open_folder()
        self.lock = JobLock(os.path.join(self.folder, LOCK_FILE), f"cache folder '{self.folder}'").acquire()
        try:
            job = read_json(os.path.join(self.folder, JOB_FILE))
            same_job = isinstance(job, dict) and job.get("key_sha256") == self.key_sha
            if job is not None and not same_job:
                self.reporter.log(f"cache {self.folder} holds another job's chunks (input, settings or models "
                                  f"differ); starting over")
                self._remove(lambda name: True)
            _write_json(os.path.join(self.folder, JOB_FILE), {"made_by": MADE_BY, "version": 3, "key": self.key,
                                                              "key_sha256": self.key_sha})
            self.chunks: list[dict] = []
            self.resume, self.consumer_state = self._find_resume()
            if same_job and not self.chunks:
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
        if check_cache_folder(self.folder):
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

    def _meta_path(self, k: int) -> str:
        return os.path.join(self.folder, f"chunk_{k:06d}.json")

    def _state_path(self, k: int) -> str:
        return os.path.join(self.folder, f"state_{k:06d}.safetensors")

    def _chunk_ok(self, k: int, meta: dict) -> bool:
        """The chunk is this job's and its bytes are those recorded (a swapped or damaged chunk is not)."""
        path = self._chunk_path(k)
        try:
            if meta.get("job") != self.key_sha or tree_sha256(path) != meta.get("sha256"):
                return False
            if self.ext == "":
                return len([n for n in os.listdir(path) if n.endswith(".png")]) == meta["frames"]
            with av.open(path) as c:
                return sum(1 for p in c.demux(c.streams.video[0]) if p.size) == meta["frames"]
        except (OSError, av.error.FFmpegError, IndexError, KeyError):
            return False

    def _find_resume(self) -> tuple[Resume | None, dict]:
        k, first = 0, 0
        while True:
            meta = read_json(self._meta_path(k))
            if not isinstance(meta, dict) or meta.get("first_frame") != first:
                break
            if not self._chunk_ok(k, meta):
                self.reporter.log(f"cache chunk '{self._chunk_path(k)}' fails its check (damaged, or another "
                                  f"job's); discarded, recomputing from frame {first}")
                break
            self.chunks.append(meta)
            first += meta["frames"]
            k += 1
        resume, consumer = None, {}
        if self.chunks:
            try:
                state = self._load_state(k - 1, self.chunks[-1])
            except Exception as err:  # noqa: BLE001 - a damaged state means starting over, never a crash
                self.reporter.log(f"cache state {self._state_path(k - 1)} is unusable ({err}); starting over")
                self.chunks = []
            else:
                meta = self.chunks[-1]
                runner = {n[6:]: v for n, v in state.items() if n.startswith("state.")}
                consumer = {n[9:]: v for n, v in state.items() if n.startswith("consumer.")}
                previous = SegmentResult(torch.zeros(0), state.get("tail"), runner, meta["last_segment"],
                                         meta["first_frame"])
                resume = Resume(meta["last_segment"] + 1, first, previous, finished=bool(meta["final"]))
        keep = self._recorded()
        self._remove(lambda name: name not in keep and name != JOB_FILE)
        if self.chunks:
            self.reporter.log(f"resuming: {first} finished frame(s) in {len(self.chunks)} chunk(s) found in "
                              f"{self.folder}")
        return resume, consumer

    def _load_state(self, k: int, meta: dict) -> dict:
        with open(self._state_path(k), "rb") as f:
            data = f.read()
        if hashlib.sha256(data).hexdigest() != meta.get("state_sha256"):
            raise ValueError("it does not match the SHA-256 its chunk recorded")
        return load_tensors(data)

    def _recorded(self) -> set[str]:
        """The names of the finished chunks' files (what this job may delete at the end)."""
        names = {os.path.basename(p(k)) for k in range(len(self.chunks))
                 for p in (self._chunk_path, self._meta_path)}
        if self.chunks:
            names.add(os.path.basename(self._state_path(len(self.chunks) - 1)))
        return names

    def _remove(self, which) -> None:
        """Delete cache files (only in a folder checked to hold nothing but this pack's cache)."""
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
        data = save_tensors(tensors)
        write_atomic(self._state_path(k), data)
        meta = {"first_frame": self._open_first, "frames": frames, "last_segment": result.index,
                "final": result.last, "job": self.key_sha, "sha256": tree_sha256(self._chunk_path(k)),
                "state_sha256": hashlib.sha256(data).hexdigest()}
        _write_json(self._meta_path(k), meta)   # last: the chunk is complete
        self.chunks.append(meta)
        self._open_first += frames
        if self._previous_state is not None:      # only the latest state is needed to continue
            os.remove(self._state_path(self._previous_state))
        self._previous_state = k

    def chunk_paths(self) -> list[str]:
        """The finished chunks, each checked against its recorded SHA-256 before it may reach the output."""
        for k, meta in enumerate(self.chunks):
            if tree_sha256(self._chunk_path(k)) != meta["sha256"]:
                bad = self._chunk_path(k)
                self.chunks = self.chunks[:k]
                self._remove(lambda name: name not in self._recorded() and name != JOB_FILE)
                raise OutputError(f"cache chunk '{bad}' changed while the job ran (it fails its SHA-256); it "
                                  f"was discarded and nothing was written: run the same command again to "
                                  f"recompute it")
        return [self._chunk_path(k) for k in range(len(self.chunks))]

    def close(self) -> None:
        """Drop an unfinished chunk and release the lock (the finished chunks stay for resuming)."""
        if self._open is not None:
            self._open.abort()
            self._open = None
        self.lock.release()

    def clear(self) -> None:
        """Remove the files this job recorded (after the output was renamed into place), and the folder if
        that leaves it empty."""
        recorded = self._recorded() | {JOB_FILE}
        self._remove(lambda name: name in recorded)
        self.close()
        if os.path.isdir(self.folder) and not os.listdir(self.folder):
            os.rmdir(self.folder)
