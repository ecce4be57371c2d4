"""The shipped models' training commands as readable files (vsr_core/configs/<model>/*.json).

A file is one `vsr` command:

    {"about": "...", "command": "train", "arguments": {"task": "upscaler", "steps": 4000, "model": {...}},
     "positional": [...], "then": "a shell step to run afterwards"}

`arguments` become options the plain way: `lr_size` -> `--lr-size`, true -> the bare
flag, false or null -> left out, objects -> JSON text. A model card lists its files in
order under `reproduce_configs` (paths from the folder that holds vsr_core/).
"""
from __future__ import annotations

import json
import os
import shlex

from ..errors import InputError

PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIGS_DIR = os.path.join(PACKAGE_PARENT, "vsr_core", "configs")
PROGRAM = "python -m vsr_core"


def load_config(path: str) -> dict:
    """A config file by its card path ('vsr_core/configs/...') or any path."""
    full = path if os.path.isabs(path) or os.path.exists(path) else os.path.join(PACKAGE_PARENT, path)
    with open(full) as f:
        config = json.load(f)
    if not isinstance(config, dict) or not isinstance(config.get("command"), str):
        raise InputError(f"'{path}' is not a training config; expected an object with a 'command'")
    return config


def _option(name: str, value) -> list[str]:
    flag = "--" + name.replace("_", "-")
    if value is True:
        return [flag]
    if value is False or value is None:
        return []
    if isinstance(value, (dict, list)):
        return [flag, json.dumps(value)]
    return [flag, str(value)]


def config_argv(config: dict) -> list[str]:
    """The `vsr` argument list of a config (what follows `vsr` or `python -m vsr_core`)."""
    argv = [config["command"], *(str(p) for p in config.get("positional", []))]
    for name, value in config.get("arguments", {}).items():
        argv += _option(name, value)
    return argv


def command_line(config: dict) -> str:
    """The config as one shell line, its `then` step joined with &&."""
    line = f"{PROGRAM} {shlex.join(config_argv(config))}"
    return f"{line} && {config['then']}" if config.get("then") else line


def card_commands(card: dict) -> list[str]:
    """The shell lines that reproduce a model card's weights, in order."""
    return [command_line(load_config(path)) for path in card.get("reproduce_configs", [])]
