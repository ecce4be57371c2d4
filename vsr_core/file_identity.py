"""What a resume cache is keyed by: the content of the input and model files, not their names.

A file: its size, modification time and a hash of its first and last MiB
(cheap for any size, and catches a file re-rendered in place). A folder of
frames: every frame file's name, size and modification time.
"""
from __future__ import annotations

import hashlib
import os

EDGE_BYTES = 1 << 20


def file_identity(path: str) -> dict:
    st = os.stat(path)
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read(EDGE_BYTES))
        if st.st_size > EDGE_BYTES:
            f.seek(max(EDGE_BYTES, st.st_size - EDGE_BYTES))
            h.update(f.read(EDGE_BYTES))
    return {"path": os.path.abspath(path), "bytes": st.st_size, "mtime_ns": st.st_mtime_ns,
            "edges_sha256": h.hexdigest()}


def folder_identity(path: str, names: list[str]) -> dict:
    frames = []
    for name in names:
        st = os.stat(os.path.join(path, name))
        frames.append([name, st.st_size, st.st_mtime_ns])
    return {"folder": os.path.abspath(path), "frames": frames}


def source_identity(path: str) -> dict:
    """The identity of a job's input: a folder's frame files, or the file itself."""
    if os.path.isdir(path):
        from .video.image_sources import frame_names
        return folder_identity(path, frame_names(path))
    return file_identity(path)
