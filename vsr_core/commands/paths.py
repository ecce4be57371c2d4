"""Output paths on the command line: a missing output folder is made (and removed again if the job fails
before writing into it)."""
from __future__ import annotations

import os
import sys
from contextlib import contextmanager

from ..errors import OutputError


@contextmanager
def output_folder(dst: str):
    """Create the folders missing above `dst` (said on stderr); if the job then fails, remove those of them
    that are still empty, so a refused job leaves nothing behind."""
    parent = os.path.dirname(os.path.abspath(dst))
    missing = []
    folder = parent
    while not os.path.exists(folder):
        missing.append(folder)
        folder = os.path.dirname(folder)
    if missing:
        try:
            os.makedirs(parent)
        except OSError as err:
            raise OutputError(f"cannot create output folder '{parent}': {err.strerror}; expected a writable "
                              f"place") from None
        print(f"created folder '{parent}'", file=sys.stderr)
    try:
        yield
    except BaseException:
        for folder in missing:                      # deepest first
            try:
                os.rmdir(folder)
            except OSError:
                break
        raise
