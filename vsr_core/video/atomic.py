"""Outputs appear at their final path only when complete, and only what a job wrote is ever deleted.

Work is written under a hidden temporary name in the destination folder (same
filesystem, so the final rename is atomic) and renamed into place at the end.
A failed or interrupted run removes its temporary and leaves whatever the user
had at the destination untouched. A PNG folder output records the files it
wrote, with their SHA-256, in FRAMES_MANIFEST; a folder may be replaced only
when it is empty or holds nothing but files so recorded, and only recorded
files whose content still matches are ever deleted (a frame that merely has a
matching name is the user's). Paths are resolved first (safe_files.resolve):
a link to a folder is judged by what the folder holds.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import uuid

from ..errors import OutputError
from ..safe_files import check_new_file, commit_file, file_sha256, read_json, resolve, write_new

FRAMES_MANIFEST = ".vsr-frames.json"
MADE_BY = "vsr_core frames"


def write_frames_manifest(folder: str, files: dict[str, str]) -> None:
    """Record the files (name: SHA-256) a PNG job wrote into its (temporary) folder."""
    write_new(os.path.join(folder, FRAMES_MANIFEST), json.dumps({"made_by": MADE_BY, "files": files}).encode())


def _recorded(folder: str) -> dict[str, str]:
    manifest = read_json(os.path.join(folder, FRAMES_MANIFEST))
    if not isinstance(manifest, dict) or manifest.get("made_by") != MADE_BY or \
            not isinstance(manifest.get("files"), dict):
        return {}
    return {n: h for n, h in manifest["files"].items() if isinstance(n, str) and "/" not in n and n != "."}


def _regular(path: str) -> bool:
    return os.path.isfile(path) and not os.path.islink(path)


def foreign_entries(folder: str) -> list[str]:
    """What a folder holds that a PNG-sequence job did not record writing (names only, cheap)."""
    recorded = _recorded(folder)
    return sorted(n for n in os.listdir(folder)
                  if n != FRAMES_MANIFEST and not (n in recorded and _regular(os.path.join(folder, n))))


def check_destination(path: str, overwrite: bool, fmt: str | None = None) -> None:
    """Fail early, before any work, if `path` cannot be written (or would need deleting others' files).
    A file output follows the no-clobber rule every command shares (safe_files.check_new_file)."""
    path = resolve(path)
    if not (os.path.isdir(path) or fmt == "png"):
        check_new_file(path, "output", overwrite)
        return
    parent = os.path.dirname(path)
    if not os.path.isdir(parent):
        raise OutputError(f"output folder '{parent}' does not exist; create it first")
    if not os.access(parent, os.W_OK):
        raise OutputError(f"output folder '{parent}' is not writable")
    if not os.path.isdir(path):
        if os.path.exists(path):
            raise OutputError(f"output '{path}' is a file; expected a folder path for PNG frames")
        return
    if fmt not in (None, "png"):
        raise OutputError(f"output '{path}' is a folder; expected a file path for {fmt} video")
    foreign = foreign_entries(path)
    if foreign:
        raise OutputError(f"output folder '{path}' holds files this job did not write ({', '.join(foreign[:3])}"
                          f"{', ...' if len(foreign) > 3 else ''}); expected an empty folder or one with only "
                          f"the frames an earlier run recorded in {FRAMES_MANIFEST}; choose a new folder")
    if os.listdir(path) and not overwrite:
        raise OutputError(f"output folder '{path}' already holds frames; choose another folder or allow "
                          f"overwriting (--overwrite)")


def temporary_name(path: str) -> str:
    """A hidden sibling of `path` that keeps its extension (muxers go by it)."""
    folder, name = os.path.split(os.path.abspath(path))
    stem, ext = os.path.splitext(name)
    return os.path.join(folder, f".{stem}.partial-{uuid.uuid4().hex[:8]}{ext}")


def partial_pattern(path: str) -> re.Pattern:
    """Matches the temporaries `temporary_name(path)` makes (and parked `.old` folders)."""
    stem, ext = os.path.splitext(os.path.basename(os.path.abspath(path)))
    return re.compile(rf"^\.{re.escape(stem)}\.partial-[0-9a-f]{{8}}{re.escape(ext)}(\.old)?$")


_PARTIAL_FOLDER_NAMES = re.compile(rf"^(frame_\d{{6}}\.png|audio\.mka|{re.escape(FRAMES_MANIFEST)})$")


def unfinished_output(path: str) -> bool:
    """Whether a temporary left by a killed job holds only what a writer puts there (a planted folder
    under a temporary's name, holding anything else, is not ours to delete)."""
    if os.path.islink(path) or not os.path.isdir(path):
        return True
    return all(_PARTIAL_FOLDER_NAMES.match(n) and _regular(os.path.join(path, n)) for n in os.listdir(path))


def discard(tmp: str) -> None:
    if os.path.islink(tmp) or os.path.isfile(tmp):
        os.remove(tmp)                     # a link itself, never what it points to
    elif os.path.isdir(tmp):
        shutil.rmtree(tmp, ignore_errors=True)


def remove_our_frames(folder: str) -> list[str]:
    """Delete the files a PNG job recorded in `folder` whose content still matches the record, then the
    folder if that leaves it empty; returns what was kept."""
    for name, digest in _recorded(folder).items():
        path = os.path.join(folder, name)
        if _regular(path) and file_sha256(path) == digest:
            os.remove(path)
    kept = [n for n in os.listdir(folder) if n != FRAMES_MANIFEST]
    if not kept:
        if os.path.lexists(os.path.join(folder, FRAMES_MANIFEST)):
            os.remove(os.path.join(folder, FRAMES_MANIFEST))
        os.rmdir(folder)
    return sorted(kept)


def recover_parked(path: str) -> list[str]:
    """Outputs parked as `.old` by a job killed between its two renames: put back when the output path is
    free, otherwise kept (never deleted). Call while holding the output's lock; returns what to tell."""
    path = resolve(path)
    folder = os.path.dirname(path)
    pattern = partial_pattern(path)
    told = []
    for name in sorted(os.listdir(folder)):
        parked = os.path.join(folder, name)
        if not (pattern.match(name) and name.endswith(".old")) or os.path.islink(parked) or \
                not os.path.isdir(parked):          # only folder outputs are parked
            continue
        if not os.path.lexists(path):
            os.rename(parked, path)
            told.append(f"restored '{path}': the earlier output that a killed run had set aside as '{name}'")
        else:
            told.append(f"kept '{parked}': an earlier output that a killed run had set aside; delete it "
                        f"yourself once it is no longer needed")
    return told


def commit(tmp: str, path: str, overwrite: bool = True) -> str | None:
    """Move a finished temporary file or folder to `path`; never replaces what the job may not delete.
    Returns a note when files of the replaced folder were kept (changed since the run that wrote them)."""
    path = resolve(path)
    if not os.path.isdir(tmp):
        commit_file(tmp, path, overwrite)
        return None
    old = None
    if os.path.lexists(path):
        foreign = foreign_entries(path) if os.path.isdir(path) and not os.path.islink(path) else [path]
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
    kept = remove_our_frames(old) if old else []
    if kept:
        return (f"kept '{old}': the replaced output's {', '.join(kept[:3])}{', ...' if len(kept) > 3 else ''} "
                f"changed since the run that wrote them")
    return None
