"""Which precision "auto" runs on this CPU, from a measurement rather than from the flags alone.

AVX512-BF16 in /proc/cpuinfo does not say bfloat16 is worth it: on an Intel
Xeon without AMX it bought nothing (issue 33), on an AMD EPYC (Zen 4) the
shipped upscaler's window ran 1.75x faster in bf16 autocast than in float32.
So the first "auto" run of the upscaler on a CPU with a bf16 flag times a few
small windows of the actual network both ways (``measure``) and keeps the
verdict in a small JSON (``cache_file``), keyed by CPU model and torch
version, so later runs pay nothing. Without any bf16 flag float32 is chosen
untimed (bf16 is emulated there). ``VSR_PRECISION=fp32|bf16`` overrides all.
"""
from __future__ import annotations

import json
import os
import tempfile
import time
from typing import Callable

from .errors import InputError
from .machine import cpu_name

ENV_OVERRIDE = "VSR_PRECISION"
CHOICES = ("fp32", "bf16")
# bf16 must be this much faster to be chosen: it rounds the network's activations, so a tie goes to float32
BF16_MIN_SPEEDUP = 1.10


def cache_file() -> str:
    """$XDG_CACHE_HOME/vsr/cpu_precision.json (default ~/.cache/vsr/cpu_precision.json)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "vsr", "cpu_precision.json")


def machine_key() -> str:
    import torch
    return f"{cpu_name()} | torch {torch.__version__}"


def env_override() -> str | None:
    value = os.environ.get(ENV_OVERRIDE, "").strip().lower()
    if not value or value == "auto":
        return None
    if value not in CHOICES:
        raise InputError(f"{ENV_OVERRIDE}={value!r}; expected one of auto, {', '.join(CHOICES)}")
    return value


def choose(seconds: dict[str, float]) -> str:
    """'bf16' when its measured seconds beat float32's by BF16_MIN_SPEEDUP, else 'fp32'."""
    fp32, bf16 = seconds.get("fp32"), seconds.get("bf16")
    if bf16 is None or fp32 is None or bf16 <= 0:
        return "fp32"
    return "bf16" if fp32 / bf16 >= BF16_MIN_SPEEDUP else "fp32"


def _read_all(path: str) -> dict:
    try:
        with open(path) as fh:
            data = json.load(fh)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}          # missing or damaged: measure again, never fail a job over a cache


def cached_choice(key: str | None = None) -> str | None:
    entry = _read_all(cache_file()).get(key or machine_key())
    choice = entry.get("choice") if isinstance(entry, dict) else None
    return choice if choice in CHOICES else None


def store(choice: str, seconds: dict[str, float], key: str | None = None) -> None:
    """Add this machine's verdict to the cache file (atomically; an unwritable cache is only skipped)."""
    path = cache_file()
    data = _read_all(path)
    data[key or machine_key()] = {"choice": choice, "seconds": {k: round(v, 4) for k, v in seconds.items()},
                                  "measured": time.strftime("%Y-%m-%dT%H:%M:%S")}
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".cpu_precision.", dir=os.path.dirname(path))
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except OSError:
        pass


def measure(run: Callable[[str], None], repeats: int = 3, clock: Callable[[], float] | None = None) -> dict:
    """Seconds of ``run(precision)`` for fp32 and bf16: one warm-up each, then ``repeats`` alternating rounds,
    the fastest of each kept (alternating, so a busy machine slows both alike)."""
    clock = clock or time.perf_counter
    best = {}
    for name in CHOICES:
        run(name)
    for _ in range(repeats):
        for name in CHOICES:
            t0 = clock()
            run(name)
            best[name] = min(best.get(name, float("inf")), clock() - t0)
    return best


_resolved: dict[str, str] = {}     # this process's verdict (the cache file is read once)


def forget() -> None:
    """Drop this process's verdict (tests; a changed cache file)."""
    _resolved.clear()


def resolve(run: Callable[[str], None] | None, has_bf16_flag: bool) -> str:
    """The CPU's "auto" precision: override, else this process's or the cache's verdict, else (with a bf16
    flag and a ``run`` to time) measure and cache; with nothing measured yet, the flags decide."""
    forced = env_override()
    if forced:
        return forced
    if not has_bf16_flag:
        return "fp32"
    if "choice" not in _resolved:
        known = cached_choice()
        if known is None and run is not None:
            seconds = measure(run)
            known = choose(seconds)
            store(known, seconds)
        if known is None:
            return "bf16"
        _resolved["choice"] = known
    return _resolved["choice"]
