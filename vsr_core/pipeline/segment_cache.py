"""Finished segments of a long job, kept on disk so a cancelled or crashed run resumes.

A cache folder belongs to one job: `job.json` holds the job's key (input file,
frame selection, settings, model files); a different key means the settings
changed, and the old segments are discarded rather than mixed in. Each segment
is one safetensors file written under a temporary name and renamed when
complete, so a crash mid-write leaves no half segment. Only files this class
wrote are ever deleted.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ..errors import InputError, OutputError
from ..frames import thwc_to_tchw, uint8_to_float
from ..progress import Reporter, get_reporter
from .segments import SegmentResult

JOB_FILE = "job.json"
_SEGMENT = re.compile(r"^segment_(\d{6})\.safetensors$")
_OURS = re.compile(r"^segment_(\d{6})\.safetensors(\.tmp)?$")  # a crash may leave a .tmp behind


def default_cache_dir(output: str) -> str:
    """A hidden folder beside the output: `.NAME.vsr-cache`."""
    folder, name = os.path.split(os.path.abspath(output))
    return os.path.join(folder, f".{name}.vsr-cache")


def open_job_cache(dst: str, cache_dir: str | None, src: str, reader, job: dict,
                   reporter: Reporter | None = None) -> "SegmentCache":
    """The cache of a file-to-file job, keyed by the input (file identity, or folder path), its frame
    selection and `job` (settings and model files)."""
    reporter = get_reporter(reporter)
    source = file_identity(src) if reader.info.kind != "image-folder" else {"folder": os.path.abspath(src)}
    key = {"version": 1, "input": source, "options": dataclasses.asdict(reader.options), **job}
    cache = SegmentCache(cache_dir or default_cache_dir(dst), key, reporter)
    if cache.found:
        reporter.log(f"resuming: {cache.found} finished segment(s) found in {cache.folder}")
    return cache


def file_identity(path: str) -> dict:
    """Cheap identity of an input or model file: path, size and modification time (no hashing of GBs)."""
    st = os.stat(path)
    return {"path": os.path.abspath(path), "bytes": st.st_size, "mtime_ns": st.st_mtime_ns}


class SegmentCache:
    def __init__(self, folder: str, key: dict, reporter: Reporter | None = None):
        self.folder = os.path.abspath(folder)
        self.key = json.loads(json.dumps(key, sort_keys=True, default=str))
        self.reporter = get_reporter(reporter)
        job = os.path.join(self.folder, JOB_FILE)
        if os.path.isdir(self.folder):
            if os.path.exists(job):
                if self._read_key(job) != self.key:
                    self.reporter.log(f"cache {self.folder} holds another job's segments (input, settings or "
                                      f"models differ); starting over")
                    self._remove_segments()
            elif os.listdir(self.folder):
                raise InputError(f"cache folder '{self.folder}' holds files that are not a job cache; expected an "
                                 f"empty or new folder (choose another --cache-dir)")
        else:
            parent = os.path.dirname(self.folder)
            if not os.path.isdir(parent):
                raise OutputError(f"cache folder's parent '{parent}' does not exist; create it first")
            os.mkdir(self.folder)
        with open(job + ".tmp", "w") as f:
            json.dump(self.key, f, indent=1, sort_keys=True)
        os.replace(job + ".tmp", job)
        self.found = len(self._segment_files())

    @staticmethod
    def _read_key(path: str):
        try:
            with open(path) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    def _segment_files(self) -> list[str]:
        return sorted(n for n in os.listdir(self.folder) if _SEGMENT.match(n))

    def _remove_segments(self) -> None:
        for name in [n for n in os.listdir(self.folder) if _OURS.match(n)]:
            os.remove(os.path.join(self.folder, name))

    def _path(self, index: int) -> str:
        return os.path.join(self.folder, f"segment_{index:06d}.safetensors")

    def load(self, index: int) -> SegmentResult | None:
        path = self._path(index)
        if not os.path.exists(path):
            return None
        try:
            data = load_file(path)
        except Exception as error:  # noqa: BLE001 - a damaged file is recomputed, not fatal
            self.reporter.log(f"cache segment {path} is unreadable ({error}); recomputing it")
            return None
        state = {k[len("state."):]: v for k, v in data.items() if k.startswith("state.")}
        return SegmentResult(thwc_to_tchw(uint8_to_float(data["frames"].numpy())), data.get("tail"), state)

    def store(self, index: int, result: SegmentResult) -> None:
        tensors = {"frames": torch.from_numpy(np.ascontiguousarray(result.frames_uint8()))}
        if result.tail is not None:
            tensors["tail"] = result.tail.contiguous()
        for name, value in result.state.items():
            tensors[f"state.{name}"] = value.detach().cpu().contiguous()
        path = self._path(index)
        save_file(tensors, path + ".tmp")
        os.replace(path + ".tmp", path)

    def clear(self) -> None:
        """Remove this job's files (after the output was renamed into place), and the folder if then empty."""
        self._remove_segments()
        job = os.path.join(self.folder, JOB_FILE)
        if os.path.exists(job):
            os.remove(job)
        if not os.listdir(self.folder):
            os.rmdir(self.folder)
