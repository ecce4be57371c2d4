"""Node signatures in ComfyUI's /object_info form, for pack classes and core nodes alike.

A V1 class is described by node_info(cls); core ComfyUI nodes come as the
JSON ComfyUI's server returns. Everything that reads inputs (the runner, the
UI-format converter, the workflow validator) goes through these functions.
"""
from __future__ import annotations

from typing import Any, NamedTuple

from vsr_core.api import InputError, check_finite_setting

WIDGET_TYPES = ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO")


class Input(NamedTuple):
    name: str
    kind: str                 # INT, FLOAT, STRING, BOOLEAN, COMBO, or a socket type ("IMAGE", "A,B")
    choices: list | None      # the options of a COMBO
    options: dict
    required: bool


def is_link(value) -> bool:
    """An API-format input that is a link [source node id, output slot], not a literal."""
    return (isinstance(value, list) and len(value) == 2 and isinstance(value[0], (str, int))
            and isinstance(value[1], int))


def node_info(cls) -> dict:
    """A V1 node class as ComfyUI's /object_info describes it."""
    spec = cls.INPUT_TYPES()
    return {"input": {k: v for k, v in spec.items() if k in ("required", "optional")},
            "output": list(cls.RETURN_TYPES),
            "output_name": list(getattr(cls, "RETURN_NAMES", cls.RETURN_TYPES)),
            "output_node": bool(getattr(cls, "OUTPUT_NODE", False)),
            "category": getattr(cls, "CATEGORY", "")}


def declared_inputs(info: dict) -> list[Input]:
    """The inputs of a node, required first, in declaration order."""
    out = []
    for section in ("required", "optional"):
        for name, decl in (info.get("input", {}).get(section) or {}).items():
            raw = decl[0]
            options = decl[1] if len(decl) > 1 and isinstance(decl[1], dict) else {}
            if isinstance(raw, (list, tuple)):
                out.append(Input(name, "COMBO", list(raw), options, section == "required"))
            elif raw == "COMBO":
                out.append(Input(name, "COMBO", list(options.get("options", [])), options, section == "required"))
            else:
                out.append(Input(name, str(raw), None, options, section == "required"))
    return out


def is_widget(inp: Input) -> bool:
    return inp.kind in WIDGET_TYPES and not inp.options.get("forceInput", False)


def has_seed_control(inp: Input) -> bool:
    """The frontend stores an extra 'control_after_generate' value after seed widgets."""
    if inp.kind != "INT":
        return False
    return bool(inp.options.get("control_after_generate", inp.name in ("seed", "noise_seed")))


def widget_size(inp: Input) -> int:
    """How many values the frontend stores for a widget input: a seed's control value follows it."""
    return 2 if has_seed_control(inp) else 1


def has_upload_button(info: dict) -> bool:
    """Whether the frontend adds an upload button to the node (a list input with image/video upload); the
    button comes after every other widget and is saved as one more widget value."""
    return any(i.options.get("image_upload") or i.options.get("video_upload") for i in declared_inputs(info))


def types_match(wanted: str, given: str) -> bool:
    """Socket compatibility, with '*' and comma unions ("VSR_VAE,VAE") as ComfyUI allows."""
    if "*" in (wanted, given):
        return True
    return bool(set(wanted.split(",")) & set(given.split(",")))


def check_value(where: str, inp: Input, value) -> Any:
    """A widget value checked against its declaration; returns it normalised (INT/FLOAT)."""
    if inp.kind == "COMBO":
        if value not in inp.choices:
            raise InputError(f"{where} = {value!r}; expected one of {inp.choices}")
    elif inp.kind in ("INT", "FLOAT"):
        if not isinstance(value, bool) and isinstance(value, (int, float)):
            check_finite_setting(value, where)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (
                inp.kind == "INT" and value != int(value)):
            raise InputError(f"{where} = {value!r}; expected {'an integer' if inp.kind == 'INT' else 'a number'}")
        value = int(value) if inp.kind == "INT" else float(value)
        lo, hi = inp.options.get("min"), inp.options.get("max")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise InputError(f"{where} = {value!r} is out of range; expected {lo} to {hi}")
    elif inp.kind == "BOOLEAN":
        if not isinstance(value, bool):
            raise InputError(f"{where} = {value!r}; expected true or false")
    elif inp.kind == "STRING":
        if not isinstance(value, str):
            raise InputError(f"{where} = {value!r}; expected text")
    return value
