"""Progress reporting and cancellation, independent of any UI.

Long-running vsr_core functions take an optional `reporter`. The command line
uses the terminal reporter below; the ComfyUI nodes pass one that drives
ComfyUI's progress bar and interrupt check (nodes/comfy_bridge.py), so
vsr_core itself never imports ComfyUI.
"""
from __future__ import annotations

import sys
import time


class Reporter:
    """Silent reporter: the interface, and the default for library calls."""

    def start(self, total: int, desc: str = "") -> None:
        """Begin a stage of `total` units (frames, steps, windows)."""

    def update(self, n: int = 1) -> None:
        """Advance the current stage by `n` units."""

    def check_interrupt(self) -> None:
        """Raise vsr_core.errors.Interrupted if the user asked to stop."""

    def log(self, message: str) -> None:
        """Tell the user something worth knowing (a fallback, a fix-up)."""


class TerminalReporter(Reporter):
    """A one-line progress bar on stderr, redrawn at most 10 times a second."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.total = 0
        self.done = 0
        self.desc = ""
        self._t0 = 0.0
        self._last = 0.0

    def start(self, total: int, desc: str = "") -> None:
        self.total, self.done, self.desc = int(total), 0, desc
        self._t0 = self._last = time.monotonic()
        self._draw(force=True)

    def update(self, n: int = 1) -> None:
        self.done += n
        self._draw(force=self.total > 0 and self.done >= self.total)

    def log(self, message: str) -> None:
        self.stream.write("\n" + message + "\n")
        self.stream.flush()

    def _draw(self, force: bool) -> None:
        now = time.monotonic()
        if not force and now - self._last < 0.1:
            return
        self._last = now
        rate = self.done / max(now - self._t0, 1e-9)
        if self.total > 0:
            frac = min(self.done / self.total, 1.0)
            bar = "#" * int(frac * 30)
            text = f"\r{self.desc} [{bar:<30}] {self.done}/{self.total} ({rate:.2f}/s)"
        else:
            text = f"\r{self.desc} {self.done} ({rate:.2f}/s)"
        self.stream.write(text)
        if force and self.total > 0 and self.done >= self.total:
            self.stream.write("\n")
        self.stream.flush()


class InnerReporter(Reporter):
    """For stages inside a larger job: cancels and logs through `outer`, but leaves its progress bar alone."""

    def __init__(self, outer: Reporter):
        self.outer = outer

    def check_interrupt(self) -> None:
        self.outer.check_interrupt()

    def log(self, message: str) -> None:
        self.outer.log(message)


def get_reporter(reporter: Reporter | None) -> Reporter:
    """The reporter to use when a caller passed `None`: a silent one."""
    return reporter if reporter is not None else Reporter()
