"""Settings as data: every setting of a job is one dataclass field, declared once with its default, range,
help and former names; the command line's options (commands/options.py) and the nodes' inputs
(nodes/setting_inputs.py) are made from these declarations, and ``check_settings`` validates them.

    window: int = setting(12, "frames processed together", min=1, max=256)

A field's name carries its unit where it has one (``tile_px``: pixels of the input frames,
``tile_latent``: latent cells). ``name`` gives a nested group's field the public name it has on the
command line and in the nodes (MotionGuidance.scale is ``guidance_scale``); ``old_flags`` and
``old_inputs`` keep former option and input names working. A field holding another settings
dataclass is a ``group``: its settings are listed with the outer ones.
"""
from __future__ import annotations

import dataclasses
from dataclasses import MISSING, dataclass, field
from numbers import Real
from typing import Any, Callable, Collection, Iterator

from .errors import InputError
from .numbers import check_finite_setting

_KEY = "vsr_setting"
_GROUP = "vsr_setting_group"


@dataclass(frozen=True)
class Setting:
    help: str
    min: float | None = None
    max: float | None = None
    choices: Collection | None = None  # a tuple, or a registry (a dict: its names, read when asked)
    step: float | None = None        # a widget's increment (the nodes)
    name: str | None = None          # the public name, where the field's own is too generic in its group
    old_flags: tuple[str, ...] = ()  # former command-line flags that still work, e.g. ("--tile",)
    old_inputs: tuple[str, ...] = ()  # former node input names that still load, e.g. ("tile",)
    cli: bool = True                 # offered on the command line
    repeat: bool = False             # the option may be given many times; ``parse`` gets the list
    parse: Callable | None = None    # the command line's text (or list of texts) -> the value


def setting(default: Any = MISSING, help: str = "", *, default_factory: Callable | Any = MISSING,
            **options) -> Any:
    """A dataclass field that is a user-facing setting (see the module doc)."""
    meta = {_KEY: Setting(help=help, **options)}
    if default_factory is not MISSING:
        return field(default_factory=default_factory, metadata=meta)
    return field(default=default, metadata=meta)


def group(factory: Callable) -> Any:
    """A field holding a nested settings dataclass, whose settings count as the outer class's."""
    return field(default_factory=factory, metadata={_GROUP: True})


def setting_of(f: dataclasses.Field) -> Setting | None:
    return f.metadata.get(_KEY)


def public_name(f: dataclasses.Field, s: Setting | None = None) -> str:
    s = s or setting_of(f)
    return (s.name if s is not None and s.name else None) or f.name


def value_type(f: dataclasses.Field) -> type | None:
    """int, float, bool, str, list or dict from the field's annotation ("int | None" -> int); None otherwise."""
    text = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    names = {"int": int, "float": float, "bool": bool, "str": str, "list": list, "dict": dict}
    for part in text.split("|"):
        part = part.strip().split("[")[0]
        if part != "None":
            return names.get(part)
    return None


def optional(f: dataclasses.Field) -> bool:
    """None is allowed (it means 'automatic' or 'not given')."""
    text = f.type if isinstance(f.type, str) else str(f.type)
    return any(part.strip() == "None" for part in text.split("|"))


@dataclass(frozen=True)
class Leaf:
    """One setting inside a (possibly nested) settings object: where it is, its declaration, its value."""
    path: tuple[str, ...]
    field: dataclasses.Field
    setting: Setting
    value: Any

    @property
    def name(self) -> str:
        return public_name(self.field, self.setting)


def leaves(obj) -> Iterator[Leaf]:
    """Every setting of a settings object, groups included, in declaration order."""
    yield from _leaves(obj, ())


def _leaves(obj, prefix: tuple[str, ...]) -> Iterator[Leaf]:
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if f.metadata.get(_GROUP) and dataclasses.is_dataclass(value):
            yield from _leaves(value, prefix + (f.name,))
        elif declared(type(obj), f) is not None:
            yield Leaf(prefix + (f.name,), f, declared(type(obj), f), value)


def declared(cls: type, f: dataclasses.Field) -> Setting | None:
    """The field's Setting, or the one of the base class that declared it where a subclass only changed
    the default (``steps: int = 3000``)."""
    for base in cls.__mro__:
        own = getattr(base, "__dataclass_fields__", {}).get(f.name)
        if own is not None and setting_of(own) is not None:
            return setting_of(own)
    return None


def leaf(obj, name: str) -> Leaf:
    """The setting called ``name`` (its public name) in ``obj``."""
    for item in leaves(obj):
        if item.name == name:
            return item
    raise KeyError(f"{type(obj).__name__} has no setting {name!r}")


def with_values(obj, values: dict[str, Any]):
    """``obj`` with the settings named in ``values`` (public names) replaced, groups rebuilt (and so checked)."""
    return with_paths(obj, {item.path: values[item.name] for item in leaves(obj) if item.name in values})


def with_paths(obj, by_path: dict[tuple[str, ...], Any]):
    """``obj`` with the settings at these paths (("sample", "steps"), ...) replaced, groups rebuilt."""
    return _replace(obj, by_path, ())


def _replace(obj, by_path: dict, prefix: tuple[str, ...]):
    changes = {}
    for f in dataclasses.fields(obj):
        path = prefix + (f.name,)
        if path in by_path:
            changes[f.name] = by_path[path]
        elif f.metadata.get(_GROUP) and any(p[:len(path)] == path for p in by_path):
            changes[f.name] = _replace(getattr(obj, f.name), by_path, path)
    return dataclasses.replace(obj, **changes) if changes else obj


def check_settings(obj) -> None:
    """Each of ``obj``'s own settings (not its groups': they check themselves) within its declaration:
    finite, of its type, one of its choices, inside its range. InputError names the setting."""
    for f in dataclasses.fields(obj):
        s = declared(type(obj), f)
        if s is not None:
            check_value(public_name(f, s), getattr(obj, f.name), s, value_type(f), optional(f))


def check_value(name: str, value, s: Setting, kind: type | None, may_be_none: bool = False) -> None:
    if value is None and may_be_none:
        return
    check_finite_setting(value, name)
    if s.choices is not None:
        if value not in s.choices or (isinstance(value, bool) and kind is not bool):
            raise InputError(f"{name}={value!r}; expected one of {', '.join(map(str, s.choices))}")
        return
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise InputError(f"{name}={value!r}; expected an integer{_range(s)}")
    if kind is float and (isinstance(value, bool) or not isinstance(value, Real)):
        raise InputError(f"{name}={value!r}; expected a number{_range(s)}")
    if kind is bool and not isinstance(value, bool):
        raise InputError(f"{name}={value!r}; expected true or false")
    if kind in (int, float) and ((s.min is not None and value < s.min) or (s.max is not None and value > s.max)):
        raise InputError(f"{name}={value!r} is out of range; expected{_range(s)}")


def _range(s: Setting) -> str:
    if s.min is not None and s.max is not None:
        return f" from {_number(s.min)} to {_number(s.max)}"
    if s.min is not None:
        return f" >= {_number(s.min)}"
    if s.max is not None:
        return f" <= {_number(s.max)}"
    return ""


def _number(value) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
