"""What a command may write, replace and delete: one set of rules for every command that writes.

- Paths are resolved (symbolic links followed) before anything is decided, so
  a link never hides what would really be replaced or deleted.
- An existing file is replaced only when the user allowed overwriting, and
  never when it is one of the command's inputs.
- Files are written under a fresh random name, created exclusively without
  following links (a link planted at a predictable name is never followed),
  then renamed into place; a failed write removes its temporary.
- A command writes into a folder of its own only when the folder is new,
  empty, or carries the marker the same command left there (`claim_folder`).
- Input, output and cache may not be, contain, or lie inside one another.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import secrets
from contextlib import contextmanager

from .errors import OutputError

NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
FOLDER_MARKER = ".vsr-folder.json"
DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)
_CHUNK = 1 << 20


def resolve(path: str) -> str:
    """The absolute path with every symbolic link followed (also for a path that does not exist yet)."""
    return os.path.realpath(os.path.abspath(os.fspath(path)))


def is_within(path: str, folder: str) -> bool:
    """Whether resolved `path` is `folder` or lies inside it."""
    path, folder = resolve(path), resolve(folder)
    return path == folder or os.path.commonpath([path, folder]) == folder


def check_apart(places: dict[str, str | None]) -> None:
    """Refuse places (e.g. {'input': ..., 'output': ..., 'cache folder': ...}) that contain one another."""
    named = [(what, p) for what, p in places.items() if p]
    for i, (a, pa) in enumerate(named):
        for b, pb in named[i + 1:]:
            for (x, px), (y, py) in (((a, pa), (b, pb)), ((b, pb), (a, pa))):
                if is_within(px, py):
                    how = "is" if resolve(px) == resolve(py) else "is inside"
                    raise OutputError(f"{x} '{px}' {how} {y} '{py}'; expected separate places (one would "
                                      f"delete or read the other's files)")


def _same(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return resolve(a) == resolve(b)


def check_new_file(path: str, what: str, overwrite: bool, inputs: tuple[str, ...] = ()) -> str:
    """The no-clobber rule for a single-file output; returns the resolved path. Writes nothing."""
    real = resolve(path)
    for source in inputs:
        if source and _same(real, source):
            raise OutputError(f"{what} '{path}' is the input '{source}'; expected a different path (the input "
                              f"would be replaced)")
    folder = os.path.dirname(real)
    if not os.path.isdir(folder):
        raise OutputError(f"{what}: folder '{folder}' does not exist; create it first")
    if os.path.isdir(real):
        raise OutputError(f"{what} '{path}' is a folder; expected a file name")
    if not os.access(folder, os.W_OK):
        raise OutputError(f"{what}: no permission to write in '{folder}'")
    if os.path.exists(real) and not overwrite:
        raise OutputError(f"{what} '{path}' already exists; choose another name or allow overwriting "
                          f"(--overwrite)")
    return real


@contextmanager
def disk_full_is_one_line(path: str):
    """A full disk, quota or read-only place while writing `path`: an OutputError naming it (errno kept, so a
    job can add what it kept), not a traceback."""
    try:
        yield
    except OSError as err:
        if isinstance(err, OutputError) or err.errno not in DISK_ERRNOS:
            raise
        error = OutputError(f"cannot write '{path}': {os.strerror(err.errno)}; nothing was replaced (free space "
                            f"or choose another place)")
        error.errno = err.errno
        raise error from None


def _write_bytes(f, data: bytes, path: str) -> None:
    """Every write of this module goes through here (tests make it fail like a full disk at `path`)."""
    f.write(data)


def open_exclusive(path: str, binary: bool = True):
    """A new file at `path`, never an existing one and never through a link (O_CREAT | O_EXCL | O_NOFOLLOW)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | NOFOLLOW | getattr(os, "O_BINARY", 0), 0o644)
    return os.fdopen(fd, "wb" if binary else "w")


def write_new(path: str, data: bytes) -> None:
    """Write `data` to a file that must not exist yet (inside a temporary folder the job made)."""
    with disk_full_is_one_line(path), open_exclusive(path) as f:
        _write_bytes(f, data, path)


def write_atomic(path: str, data: bytes | str, overwrite: bool = True) -> None:
    """Write a whole file under a fresh temporary name beside `path`, then rename it into place."""
    if isinstance(data, str):
        data = data.encode()
    folder, name = os.path.split(os.path.abspath(path))
    for _ in range(100):
        tmp = os.path.join(folder, f".{name}.{secrets.token_hex(4)}.tmp")
        try:
            f = open_exclusive(tmp)       # a fresh name, created exclusively: nothing planted is followed
            break
        except FileExistsError:
            continue
    else:
        raise OutputError(f"cannot create a temporary file beside '{path}'")
    try:
        with disk_full_is_one_line(path), f:
            _write_bytes(f, data, tmp)
        commit_file(tmp, path, overwrite)
    except BaseException:
        if os.path.lexists(tmp):
            os.remove(tmp)
        raise


def commit_file(tmp: str, path: str, overwrite: bool) -> None:
    """Move a finished temporary file to `path`; without `overwrite` nothing that appeared there is replaced."""
    if os.path.isdir(path) and not os.path.islink(path):
        raise OutputError(f"output '{path}' is a folder; expected a file path")
    if overwrite:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)      # no-clobber: fails if something appeared at `path` meanwhile
    except FileExistsError:
        raise OutputError(f"output '{path}' appeared while the job ran; nothing was replaced") from None
    except OSError:             # filesystems without hard links
        if os.path.lexists(path):
            raise OutputError(f"output '{path}' appeared while the job ran; nothing was replaced") from None
        os.replace(tmp, path)
        return
    os.remove(tmp)


def file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def tree_sha256(path: str) -> str:
    """A file's SHA-256, or for a folder one over its files' names and contents (sorted)."""
    if not os.path.isdir(path):
        return file_sha256(path)
    h = hashlib.sha256()
    for name in sorted(os.listdir(path)):
        h.update(f"{name}\0{tree_sha256(os.path.join(path, name))}\n".encode())
    return h.hexdigest()


def read_json(path: str):
    """The JSON in a regular file (links are not followed), or None if absent or unreadable."""
    try:
        fd = os.open(path, os.O_RDONLY | NOFOLLOW)
        with os.fdopen(fd) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def claim_folder(path: str, command: str, what: str, legacy=None) -> str:
    """Make or take `path` as `command`'s own folder; returns it resolved.

    A folder is taken when it is new, empty, or carries the marker an earlier
    `command` left (``legacy(path)`` may vouch for a folder made before the
    marker existed). Anything else holds someone else's files: refused.
    """
    real = resolve(path)
    if os.path.exists(real) and not os.path.isdir(real):
        raise OutputError(f"{what} '{path}' is a file; expected a folder")
    try:
        os.makedirs(real, exist_ok=True)
    except OSError as err:
        raise OutputError(f"cannot create {what} '{path}': {err.strerror}") from None
    marker = read_json(os.path.join(real, FOLDER_MARKER))
    if isinstance(marker, dict) and marker.get("made_by") == command:
        return real
    names = sorted(os.listdir(real))
    if marker is not None or (names and not (legacy and legacy(real))):
        shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
        raise OutputError(f"{what} '{path}' holds files `{command}` did not write ({shown}); expected a new or "
                          f"empty folder, or one an earlier `{command}` made (nothing was changed)")
    write_atomic(os.path.join(real, FOLDER_MARKER), json.dumps({"made_by": command}) + "\n")
    return real
