"""Comparing a state dict with a module's expected keys and shapes."""
from __future__ import annotations

from torch import nn

from ..errors import CheckpointError

_LIMIT = 20  # keys listed per category in an error


def check_state_dict(module: nn.Module, sd: dict, what: str = "checkpoint", allow_missing=()) -> None:
    """Raise CheckpointError unless `sd` has exactly the module's keys and shapes."""
    expected = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    missing = sorted(k for k in expected if k not in sd and not k.startswith(tuple(allow_missing)))
    unexpected = sorted(k for k in sd if k not in expected)
    mismatched = sorted(k for k in expected if k in sd and tuple(sd[k].shape) != expected[k])
    if not (missing or unexpected or mismatched):
        return

    def lst(items):
        more = f"\n    ... and {len(items) - _LIMIT} more" if len(items) > _LIMIT else ""
        return "".join(f"\n    {i}" for i in items[:_LIMIT]) + more

    parts = [f"{what} does not match the layout expected for it."]
    if missing:
        parts.append(f"  missing keys ({len(missing)}):{lst(missing)}")
    if unexpected:
        parts.append(f"  unexpected keys ({len(unexpected)}):{lst(unexpected)}")
    if mismatched:
        parts.append(f"  shape mismatches ({len(mismatched)}):" + lst(
            [f"{k}: file {list(sd[k].shape)}, expected {list(expected[k])}" for k in mismatched]))
    parts.append("  The file may be truncated, or hold a different model than its keys suggest.")
    raise CheckpointError("\n".join(parts))
