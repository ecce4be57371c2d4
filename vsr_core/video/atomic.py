"""Outputs appear at their final path only when complete, and only what a job wrote is ever deleted.

Work is written under a hidden temporary name in the destination folder (same
filesystem, so the final rename is atomic) and renamed into place at the end.
A failed or interrupted run removes its temporary and leaves whatever the user
had at the destination untouched. A PNG folder output may replace only an
empty folder or one that holds nothing but frames an earlier run wrote.
"""
from __future__ import annotations

import os
import re
import shutil
import uuid

from ..errors import OutputError

OUR_FRAME = re.compile(r"^frame_\d{6}\.png$")
OUR_EXTRAS = ("audio.mka",)


def _ours(name: str) -> bool:
    return bool(OUR_FRAME.match(name)) or name in OUR_EXTRAS


def foreign_entries(folder: str) -> list[str]:
    """What a folder holds that a PNG-sequence job did not write."""
    return sorted(n for n in os.listdir(folder) if not _ours(n))


def check_destination(path: str, overwrite: bool, fmt: str | None = None) -> None:
    """Fail early, before any work, if `path` cannot be written (or would need deleting others' files)."""
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise OutputError(f"output folder '{parent}' does not exist; create it first")
    if not os.access(parent, os.W_OK):
        raise OutputError(f"output folder '{parent}' is not writable")
    if os.path.isdir(path):
        if fmt not in (None, "png"):
            raise OutputError(f"output '{path}' is a folder; expected a file path for {fmt} video")
        foreign = foreign_entries(path)
        if foreign:
            raise OutputError(f"output folder '{path}' holds files this job did not write ({', '.join(foreign[:3])}"
                              f"{', ...' if len(foreign) > 3 else ''}); expected an empty folder or one with only "
                              f"frame_NNNNNN.png frames of an earlier run; choose a new folder")
        if os.listdir(path) and not overwrite:
            raise OutputError(f"output folder '{path}' already holds frames; choose another folder or allow "
                              f"overwriting (--overwrite)")
    elif os.path.exists(path):
        if fmt == "png":
            raise OutputError(f"output '{path}' is a file; expected a folder path for PNG frames")
        if not overwrite:
            raise OutputError(f"output '{path}' already exists; choose another name or allow overwriting "
                              f"(--overwrite)")


def temporary_name(path: str) -> str:
    """A hidden sibling of `path` that keeps its extension (muxers go by it)."""
    folder, name = os.path.split(os.path.abspath(path))
    stem, ext = os.path.splitext(name)
    return os.path.join(folder, f".{stem}.partial-{uuid.uuid4().hex[:8]}{ext}")


def partial_pattern(path: str) -> re.Pattern:
    """Matches the temporaries `temporary_name(path)` makes (and parked `.old` folders)."""
    stem, ext = os.path.splitext(os.path.basename(os.path.abspath(path)))
    return re.compile(rf"^\.{re.escape(stem)}\.partial-[0-9a-f]{{8}}{re.escape(ext)}(\.old)?$")


def discard(tmp: str) -> None:
    if os.path.isdir(tmp):
        shutil.rmtree(tmp, ignore_errors=True)
    elif os.path.exists(tmp):
        os.remove(tmp)


def remove_our_frames(folder: str) -> None:
    """Delete the frames a PNG job wrote in `folder`, and the folder if that leaves it empty."""
    for name in os.listdir(folder):
        if _ours(name):
            os.remove(os.path.join(folder, name))
    if not os.listdir(folder):
        os.rmdir(folder)


def commit(tmp: str, path: str, overwrite: bool = True) -> None:
    """Move a finished temporary file or folder to `path`; never replaces what the job may not delete."""
    if os.path.isdir(tmp):
        old = None
        if os.path.exists(path):
            foreign = foreign_entries(path) if os.path.isdir(path) else [path]
            if foreign or (os.listdir(path) and not overwrite):
                held = ", ".join(foreign[:3]) or "frames"
                raise OutputError(f"output '{path}' changed while the job ran (now holds {held}); nothing was replaced")
            old = temporary_name(path) + ".old"
            os.rename(path, old)
        try:
            os.rename(tmp, path)
        except OSError:
            if old:
                os.rename(old, path)
            raise
        if old:
            remove_our_frames(old)
        return
    if os.path.isdir(path):
        raise OutputError(f"output '{path}' is a folder; expected a file path")
    if overwrite:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)      # no-clobber: fails if something appeared at `path` meanwhile
    except FileExistsError:
        raise OutputError(f"output '{path}' appeared while the job ran; nothing was replaced") from None
    except OSError:             # filesystems without hard links
        if os.path.exists(path):
            raise OutputError(f"output '{path}' appeared while the job ran; nothing was replaced") from None
        os.replace(tmp, path)
        return
    os.remove(tmp)
