"""The one check every numeric setting goes through: NaN and infinity are refused, naming the setting.

NaN passes every range check (each comparison with it is False), so a range
check alone lets it through to the maths, where it silently turns frames
black or non-finite. The command line (argparse type), the headless workflow
runner and every node call use these functions.
"""
from __future__ import annotations

import argparse
import math
from numbers import Real

from .errors import InputError


def check_finite_setting(value, name: str):
    """`value` itself if it is not a number or is a finite one; InputError naming `name` if NaN or +-inf."""
    if isinstance(value, Real) and not isinstance(value, bool):
        try:
            finite = math.isfinite(value)
        except (OverflowError, ValueError):      # an int too large for a float
            finite = False
        if not finite:
            raise InputError(f"{name} = {value!r} is not a finite number; expected a real value "
                             f"(NaN and infinity are refused)")
    return value


def finite_float(text: str) -> float:
    """argparse type for float options: '--guidance nan' is a one-line usage error, not a silent NaN."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number (NaN and infinity are refused)")
    return value
