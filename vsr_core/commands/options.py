"""Command-line options made from settings declarations (vsr_core.settings): one option per setting, named
after it (tile_px: --tile-px), its former flags kept (--tile), its default, choices, help and type taken
from the field; the parsed options are turned back into the settings object in one call."""
from __future__ import annotations

import argparse

from ..numbers import finite_float
from ..settings import Leaf, leaves, value_type, with_paths
from . import json_object


def comma_list(text: str) -> list[str]:
    """argparse type for a comma-separated list (e.g. --photos a.jpg,b.jpg)."""
    return [part for part in text.split(",") if part]


# how an option's text is read (a list stays text until from_args: the parsed options read as written)
PARSERS = {int: int, float: finite_float, dict: json_object}


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_settings(parser, defaults, only: tuple[str, ...] | None = None, skip: frozenset[str] = frozenset(),
                 overrides: dict[str, dict] | None = None) -> None:
    """An option for every command-line setting of ``defaults`` (a settings object, whose values are the
    options' defaults), or only those named in ``only``; ``skip`` leaves some out for the command to add.
    A name met twice (a group's setting that the outer class also holds, e.g. restore's tile_latent) is one
    option, and ``from_args`` gives its value to both. ``overrides``: argparse keywords for some options of
    this command only (e.g. {"task": {"required": True}})."""
    seen = set()
    for item in leaves(defaults):
        if item.setting.cli and item.name not in set(skip) | seen and (only is None or item.name in only):
            add_option(parser, item, **(overrides or {}).get(item.name, {}))
            seen.add(item.name)


def add_option(parser, item: Leaf, **overrides) -> None:
    names = [flag(item.name), *item.setting.old_flags]
    help_text = item.setting.help.replace("%", "%%")
    if value_type(item.field) is bool:
        action = argparse.BooleanOptionalAction if item.value else "store_true"
        parser.add_argument(*names, dest=item.name, action=action, default=item.value, help=help_text,
                            **overrides)
        return
    if item.setting.repeat:
        parser.add_argument(*names, dest=item.name, action="append", default=[], metavar="NAME=VALUE",
                            help=help_text, **overrides)
        return
    options = dict(dest=item.name, type=PARSERS.get(value_type(item.field), str), default=item.value,
                   help=help_text)
    if item.setting.choices is not None:
        options["choices"] = item.setting.choices
    parser.add_argument(*names, **{**options, **overrides})


def from_args(defaults, args):
    """``defaults`` with every command-line setting the parser read (by its public name) replaced, and so
    checked; a name shared by a group's setting sets both (restore's tile_latent and its sampler's)."""
    given = vars(args)
    return with_paths(defaults, {item.path: _value(item, given[item.name]) for item in leaves(defaults)
                                 if item.setting.cli and item.name in given})


def given_settings(defaults, args) -> dict:
    """{public name: value} of every command-line setting of ``defaults`` the parser read (unchecked: for a
    caller that builds the settings object itself)."""
    given = vars(args)
    return {item.name: _value(item, given[item.name]) for item in leaves(defaults)
            if item.setting.cli and item.name in given}


def _value(item: Leaf, given):
    if value_type(item.field) is list and isinstance(given, str):
        return comma_list(given)
    parse = item.setting.parse
    return parse(given) if parse is not None and (item.setting.repeat or isinstance(given, str)) else given
