"""The command line's commands, one module each; shared argument types live here."""
from __future__ import annotations

import argparse
import json


def json_object(text: str) -> dict:
    """argparse type for options given as a JSON object: bad JSON is a one-line usage error, not a traceback."""
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as err:
        raise argparse.ArgumentTypeError(f"{text[:60]!r} is not valid JSON ({err}); expected an object such "
                                         f"as '{{\"channels\": 32}}'") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"{text[:60]!r} is a JSON {type(value).__name__}; expected an object "
                                         f"such as '{{\"channels\": 32}}'")
    return value
