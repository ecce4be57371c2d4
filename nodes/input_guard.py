"""Every node call checks its number inputs for NaN and infinity before any work (one wrapper for all nodes).

ComfyUI checks a FLOAT widget against its min and max, but NaN passes both
comparisons, so `blend = NaN` (from an API prompt, or a link from another
node) reached the maths and came out as non-finite frames. The check is the
same one the command line and the headless runner use.
"""
from __future__ import annotations

import functools
import inspect

from vsr_core.api import check_finite_setting

_GUARDED = "_vsr_finite_inputs"


def _number_inputs(cls) -> list[str]:
    spec = cls.INPUT_TYPES()
    return [name for section in ("required", "optional") for name, decl in (spec.get(section) or {}).items()
            if decl and decl[0] in ("FLOAT", "INT")]


def guard_number_inputs(cls) -> type:
    """Wrap `cls`'s FUNCTION so a NaN or infinite FLOAT/INT input is an InputError naming node and input."""
    function = getattr(cls, cls.FUNCTION)
    if getattr(function, _GUARDED, False):
        return cls
    signature = inspect.signature(function)
    names: list[str] | None = None        # INPUT_TYPES is read on the first call (it may list folders)

    @functools.wraps(function)
    def guarded(self, *args, **kwargs):
        nonlocal names
        if names is None:
            names = _number_inputs(cls)
        given = signature.bind_partial(self, *args, **kwargs).arguments
        for name in names:
            if name in given:
                check_finite_setting(given[name], f"{cls.__name__} input '{name}'")
        return function(self, *args, **kwargs)

    setattr(guarded, _GUARDED, True)
    setattr(cls, cls.FUNCTION, guarded)
    return cls
