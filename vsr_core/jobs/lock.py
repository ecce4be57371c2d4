"""One job per output: an exclusive lock held for the whole run.

``flock`` locks die with their process, so a lock left by a killed job is
never mistaken for a live one; the file also records the holder's PID so the
second job can say who is writing. The file is removed on release.
"""
from __future__ import annotations

import os
import re
import socket
import stat

from ..errors import OutputError
from ..safe_files import NOFOLLOW, disk_full_is_one_line

LOCK_RECORD = re.compile(rb"^\d+ [^\s]*\n?$")

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None
    import msvcrt


def _try_lock(fd: int) -> bool:
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        return True
    except OSError:
        return False


def _holder(path: str) -> str:
    try:
        with open(path) as f:
            pid, _, host = f.read().strip().partition(" ")
        return f"process {pid}" + (f" on {host}" if host and host != socket.gethostname() else "")
    except OSError:
        return "another process"


class JobLock:
    """``with JobLock(path, what):`` - raises OutputError if another live process holds it."""

    def __init__(self, path: str, what: str):
        self.path, self.what = os.path.abspath(path), what
        self.fd = None

    def _open(self) -> int:
        """Open or create the lock file, never through a link (anyone who can write the folder could plant
        one pointing at a file of yours) and never anything but a regular file."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | NOFOLLOW, 0o644)
        except OSError as err:
            if os.path.islink(self.path):
                raise OutputError(f"lock file '{self.path}' for {self.what} is a symbolic link; refusing to follow "
                                  f"it (remove it if it is yours)") from None
            raise OutputError(f"cannot create the lock file '{self.path}' for {self.what}: {err.strerror}; "
                              f"expected a writable folder") from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise OutputError(f"lock file '{self.path}' for {self.what} is not a regular file; expected a lock "
                              f"this pack wrote (remove it if it is yours)")
        return fd

    def _check_record(self, fd: int) -> None:
        """An existing file is truncated only when it holds a lock record ("PID HOST") or nothing."""
        content = os.pread(fd, 4096, 0) if hasattr(os, "pread") else b""
        if content and not LOCK_RECORD.match(content):
            os.close(fd)
            raise OutputError(f"'{self.path}' holds something that is not a lock this pack wrote; expected no "
                              f"file of that name there (it was left untouched)")

    def acquire(self) -> "JobLock":
        for _ in range(5):  # retry if the holder removed the file between our open and lock
            fd = self._open()
            if not _try_lock(fd):
                os.close(fd)
                raise OutputError(f"{self.what} is already being written by {_holder(self.path)} "
                                  f"(lock '{self.path}'); wait for it to finish or choose another output")
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                self._check_record(fd)
                try:
                    with disk_full_is_one_line(self.path):
                        os.ftruncate(fd, 0)
                        os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
                except OSError:
                    os.close(fd)
                    raise
                self.fd = fd
                return self
            os.close(fd)
        raise OutputError(f"could not lock {self.what} ('{self.path}'): it keeps being replaced")

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            os.remove(self.path)   # ours: removed while still locked, so nobody else holds it
        except OSError:
            pass
        os.close(self.fd)
        self.fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
        return False
