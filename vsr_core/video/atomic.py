"""Outputs appear at their final path only when complete.

Work is written under a hidden temporary name in the destination folder (same
filesystem, so the final rename is atomic) and renamed into place at the end.
A failed or interrupted run removes its temporary and leaves whatever the user
had at the destination untouched.
"""
from __future__ import annotations

import os
import shutil
import uuid

from ..errors import OutputError


def check_destination(path: str, overwrite: bool) -> None:
    """Fail early, before any work, if `path` cannot be written."""
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise OutputError(f"output folder '{parent}' does not exist; create it first")
    if not os.access(parent, os.W_OK):
        raise OutputError(f"output folder '{parent}' is not writable")
    if os.path.exists(path) and not overwrite:
        raise OutputError(f"output '{path}' already exists; choose another name or allow overwriting")


def temporary_name(path: str) -> str:
    """A hidden sibling of `path` that keeps its extension (muxers go by it)."""
    folder, name = os.path.split(os.path.abspath(path))
    stem, ext = os.path.splitext(name)
    return os.path.join(folder, f".{stem}.partial-{uuid.uuid4().hex[:8]}{ext}")


def discard(tmp: str) -> None:
    if os.path.isdir(tmp):
        shutil.rmtree(tmp, ignore_errors=True)
    elif os.path.exists(tmp):
        os.remove(tmp)


def commit(tmp: str, path: str) -> None:
    """Move a finished temporary file or folder to `path`, replacing what was there."""
    if os.path.isdir(tmp):
        # Folders cannot be replaced atomically: park the old one, then delete it.
        old = None
        if os.path.exists(path):
            old = temporary_name(path) + ".old"
            os.rename(path, old)
        try:
            os.rename(tmp, path)
        except OSError:
            if old:
                os.rename(old, path)
            raise
        if old:
            discard(old)
    else:
        if os.path.isdir(path):
            raise OutputError(f"output '{path}' is a folder; expected a file path")
        os.replace(tmp, path)
