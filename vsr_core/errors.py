"""Errors vsr_core raises for bad input.

Every message names the offending input and says what was expected, so the
user can fix it without reading a traceback.
"""


class VSRError(Exception):
    """Base class for all errors raised on purpose by vsr_core."""


class InputError(VSRError, ValueError):
    """A user-supplied file, option or tensor is not what was expected."""


class CheckpointError(VSRError, ValueError):
    """A checkpoint file is unreadable or does not match the expected layout."""


class OutputError(VSRError, OSError):
    """An output path cannot be written (missing folder, no permission, exists)."""


class Interrupted(VSRError):
    """The user cancelled the run (Ctrl-C in the terminal, Cancel in ComfyUI)."""
