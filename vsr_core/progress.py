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

    def working(self, fraction: float, units: float) -> None:
        """The piece of work under way (about `units` units, e.g. a window's frames) is `fraction` done;
        shown as progress until the next update (for the elapsed time and ETA of long pieces)."""

    def finish(self) -> None:
        """The stage is over (close the progress line, so what follows starts on a line of its own)."""

    def check_interrupt(self) -> None:
        """Raise vsr_core.errors.Interrupted if the user asked to stop."""

    def log(self, message: str) -> None:
        """Tell the user something worth knowing (a fallback, a fix-up)."""


def clock(seconds: float) -> str:
    """'1:05' or '1:02:03'."""
    s = int(max(seconds, 0))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class TerminalReporter(Reporter):
    """A one-line progress bar on stderr: units done of the total, elapsed time and ETA, redrawn at most
    10 times a second; messages and the end of the stage start lines of their own."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.total = 0
        self.done = 0
        self.partial = 0.0          # units of the piece under way (working), until the next update
        self.desc = ""
        self._t0 = 0.0
        self._last = 0.0
        self._line_open = False

    def start(self, total: int, desc: str = "") -> None:
        self.total, self.done, self.partial, self.desc = int(total), 0, 0.0, desc
        self._t0 = self._last = time.monotonic()
        self._draw(force=True)

    def update(self, n: int = 1) -> None:
        self.done += n
        self.partial = 0.0
        self._draw(force=self.total > 0 and self.done >= self.total)

    def working(self, fraction: float, units: float) -> None:
        self.partial = max(0.0, min(fraction, 1.0)) * units
        self._draw(force=False)

    def finish(self) -> None:
        if self._line_open:
            self.stream.write("\n")
            self.stream.flush()
            self._line_open = False

    def log(self, message: str) -> None:
        self.stream.write(("\n" if self._line_open else "") + message + "\n")
        self.stream.flush()
        self._line_open = False

    def _draw(self, force: bool) -> None:
        now = time.monotonic()
        if not force and now - self._last < 0.1:
            return
        self._last = now
        elapsed = now - self._t0
        progress = self.done + self.partial
        rate = progress / max(elapsed, 1e-9)
        timing = f"{clock(elapsed)} elapsed"
        if self.total > 0:
            frac = min(progress / self.total, 1.0)
            bar = "#" * int(frac * 30)
            if self.done < self.total:
                timing += f", ETA {clock((self.total - progress) / rate)}" if progress > 0 else ", ETA --:--"
            text = f"\r{self.desc} [{bar:<30}] {self.done}/{self.total} ({rate:.2f}/s, {timing})"
        else:
            text = f"\r{self.desc} {self.done} ({rate:.2f}/s, {timing})"
        self.stream.write(text + "\x1b[K" if self.stream.isatty() else text)
        self._line_open = True
        if force and self.total > 0 and self.done >= self.total:
            self.finish()
        self.stream.flush()


class PieceProgress(Reporter):
    """The tiles (or steps) of one piece of work, shown on `outer` as that piece's progress (working)."""

    def __init__(self, outer: Reporter, units: float):
        self.outer, self.units, self.total, self.done = outer, units, 1, 0

    def start(self, total: int, desc: str = "") -> None:
        self.total, self.done = max(int(total), 1), 0

    def update(self, n: int = 1) -> None:
        self.done += n
        self.outer.working(self.done / self.total, self.units)

    def check_interrupt(self) -> None:
        self.outer.check_interrupt()

    def log(self, message: str) -> None:
        self.outer.log(message)


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
