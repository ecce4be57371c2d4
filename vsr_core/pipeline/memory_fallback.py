"""Out-of-memory fallback: retry a stage with smaller tiles or windows instead of failing the job.

A stage runs as `run(settings)`. When it raises an out-of-memory error (CUDA,
MPS or the CPU allocator), the memory is released, `shrink(settings)` gives
the next smaller settings, the user is told what changed, and the stage runs
again; the settings that worked are returned so later windows start there.
When nothing can shrink any more, the error says what was tried.
"""
from __future__ import annotations

import dataclasses
import gc
from typing import Callable, TypeVar

import torch

from ..errors import VSRError
from ..progress import Reporter, get_reporter

S = TypeVar("S")
T = TypeVar("T")

_OOM_TEXT = ("out of memory", "can't allocate memory", "not enough memory", "failed to allocate")


class OutOfMemory(VSRError, MemoryError):
    """A stage ran out of memory even at its smallest tile and window sizes."""


def is_out_of_memory(error: BaseException) -> bool:
    """True for torch's OutOfMemoryError (CUDA/XPU), MemoryError and the allocators' RuntimeErrors."""
    oom_type = getattr(torch, "OutOfMemoryError", None) or getattr(torch.cuda, "OutOfMemoryError", None)
    if (oom_type is not None and isinstance(error, oom_type)) or isinstance(error, MemoryError):
        return not isinstance(error, OutOfMemory)
    return isinstance(error, RuntimeError) and any(text in str(error).lower() for text in _OOM_TEXT)


def free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    mps = getattr(torch, "mps", None)
    if mps is not None and torch.backends.mps.is_available():
        mps.empty_cache()


def changes(before, after) -> str:
    """'tile 64 -> 32, window 5 -> 3' for two dicts or dataclass instances (nested ones included)."""
    out = []
    names = list(before) if isinstance(before, dict) else [f.name for f in dataclasses.fields(before)]
    value = (lambda d, k: d[k]) if isinstance(before, dict) else getattr
    for name in names:
        a, b = value(before, name), value(after, name)
        if a == b:
            continue
        if dataclasses.is_dataclass(a) and dataclasses.is_dataclass(b):
            out.append(changes(a, b))
        else:
            out.append(f"{name} {a} -> {b}")
    return ", ".join(out)


def retry_on_oom(run: Callable[[S], T], settings: S, shrink: Callable[[S], S | None], what: str,
                 reporter: Reporter | None = None) -> tuple[T, S]:
    """(run(s), s) for the first settings s, from `settings` down the `shrink` chain, that fit in memory."""
    reporter = get_reporter(reporter)
    while True:
        failed = None
        try:
            return run(settings), settings
        except Exception as error:  # noqa: BLE001 - only out-of-memory errors are handled, the rest re-raised
            if not is_out_of_memory(error):
                raise
            failed = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
        # Outside the except block, so the traceback (and the tensors its frames hold) is already gone.
        free_memory()
        smaller = shrink(settings)
        if smaller is None:
            raise OutOfMemory(f"{what} ran out of memory even at the smallest tiles and windows ({failed}); "
                              f"free memory (close other programs, offload models) or use a smaller input")
        reporter.log(f"{what}: out of memory; retrying with smaller pieces ({changes(settings, smaller)}). "
                     f"Results may differ slightly from the larger setting.")
        settings = smaller


def _tile_keys(pieces: dict) -> tuple[str | None, str | None]:
    """The tile's key, in its unit (tile_latent, tile_px, ...), and its overlap's (tile_overlap_<unit>)."""
    for key in pieces:
        if key.startswith("tile") and "overlap" not in key:
            return key, key.replace("tile", "tile_overlap", 1)
    return None, None


def smaller_pieces(pieces: dict, min_tile: int = 16, min_window: int = 2) -> dict | None:
    """The next smaller {tile_<unit>, tile_overlap_<unit>, window, window_overlap} (any subset): half the
    tile, down to min_tile; then a window two frames shorter, down to min_window; overlaps shrink along.
    None at the end."""
    out = dict(pieces)
    tile, overlap = _tile_keys(out)
    if tile is not None and out[tile] > min_tile:
        out[tile] = halve(out[tile], min_tile)
        if overlap in out:
            out[overlap] = min(out[overlap], out[tile] // 2)
        return out
    if out.get("window", 0) > min_window:
        out["window"] = max(min_window, out["window"] - 2)
        if "window_overlap" in out:
            out["window_overlap"] = min(out["window_overlap"], out["window"] - 1)
        return out
    return None


def halve(value: int, minimum: int) -> int:
    """value // 2, not below `minimum` (the caller sees no change when already there)."""
    return max(minimum, value // 2)
