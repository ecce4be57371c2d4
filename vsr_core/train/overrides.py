"""`--model` overrides checked against the config they update: an unknown key is named, not a TypeError."""
from __future__ import annotations

import dataclasses

from ..errors import InputError


def config_with_overrides(config_class, overrides, **fixed):
    """`config_class(**fixed, **overrides)`, refusing overrides that are not a dict of its field names."""
    if not isinstance(overrides, dict):
        raise InputError(f"--model {overrides!r} is a {type(overrides).__name__}; expected a JSON object of "
                         f"{config_class.__name__} fields")
    allowed = sorted({f.name for f in dataclasses.fields(config_class)} - set(fixed))
    unknown = sorted(set(overrides) - set(allowed))
    if unknown:
        raise InputError(f"--model names {', '.join(map(repr, unknown))}, which {config_class.__name__} does not "
                         f"have; expected keys among {', '.join(allowed)}")
    try:
        return config_class(**fixed, **overrides)
    except (TypeError, ValueError) as err:
        raise InputError(f"--model {overrides}: {err}; expected values of the types {config_class.__name__} "
                         f"declares") from None
