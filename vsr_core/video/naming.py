"""Numbered output names like ComfyUI's: <prefix>_00001.mp4, never overwriting."""
from __future__ import annotations

import os
import re

from ..errors import OutputError
from ..safe_files import resolve


def check_output_prefix(root: str, prefix: str) -> str:
    """The absolute '<root>/<prefix>' if it stays inside `root` and can be written there (nothing is created)."""
    root = resolve(root)
    if not isinstance(prefix, str) or not prefix.strip() or "\0" in prefix:
        raise OutputError(f"filename_prefix {prefix!r} is empty or invalid; expected a relative name such as "
                          f"'vsr/clip'")
    # resolved before the containment check: a linked folder inside the output folder may point anywhere
    target = resolve(os.path.join(root, prefix))
    if os.path.commonpath([root, target]) != root or target == root:
        raise OutputError(f"filename_prefix '{prefix}' points outside the output folder '{root}'; "
                          f"expected a relative name such as 'vsr/clip'")
    existing = os.path.dirname(target)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    _check_name_lengths(prefix, existing)
    if not os.path.isdir(existing) or not os.access(existing, os.W_OK):
        raise OutputError(f"filename_prefix '{prefix}': '{existing}' is not a writable folder; expected a "
                          f"place inside '{root}' this process may write")
    return target


# What the writer adds to a prefix's last name: '.' + '_00001' + '.partial-xxxxxxxx' + '.mkv' (the temporary name).
ADDED_TO_NAME = 32


def _check_name_lengths(prefix: str, folder: str) -> None:
    """Refuse a prefix whose names the file system cannot hold, before anything is written."""
    try:
        limit = os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):
        limit = 255
    parts = prefix.replace("\\", "/").split("/")
    for i, part in enumerate(parts):
        room = limit - (ADDED_TO_NAME if i == len(parts) - 1 else 0)
        if len(part.encode("utf-8", "surrogateescape")) > room:
            raise OutputError(f"filename_prefix: the name '{part[:40]}...' is {len(part.encode())} bytes long; "
                              f"expected at most {room} (the file system allows {limit} per name"
                              f"{', and a number and extension are added' if i == len(parts) - 1 else ''})")


def next_numbered_path(root: str, prefix: str, ext: str) -> str:
    """The next '<root>/<prefix>_NNNNN<ext>' after any taken number; the prefix may hold subfolders.

    `ext` is '' for a folder (PNG frames). Subfolders are created; a prefix that
    climbs out of `root` ('../x', '/abs') is refused.
    """
    folder, stem = os.path.split(check_output_prefix(root, prefix))
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as err:
        raise OutputError(f"cannot create output folder '{folder}': {err}") from None
    # One counter per prefix, whatever the extension, as ComfyUI's own savers do.
    pattern = re.compile(re.escape(stem) + r"_(\d{5,})(\.\w+)?$")
    taken = [int(m.group(1)) for m in map(pattern.match, os.listdir(folder)) if m]
    return os.path.join(folder, f"{stem}_{max(taken, default=0) + 1:05d}{ext}")
