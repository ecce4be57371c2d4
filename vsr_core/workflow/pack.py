"""Load a ComfyUI custom node pack from its folder, the way ComfyUI does.

vsr_core never imports the pack's nodes statically; the headless runner hosts
node packs by path, like ComfyUI's own loader, so the same classes run in both.
"""
from __future__ import annotations

import importlib.util
import os
import sys

from ..errors import InputError

# The folder that holds vsr_core is the node pack vsr_core ships in.
DEFAULT_PACK = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_loaded: dict[str, dict] = {}


def load_node_pack(folder: str = DEFAULT_PACK) -> dict[str, type]:
    """NODE_CLASS_MAPPINGS of the pack in `folder` (imported once per process)."""
    folder = os.path.abspath(folder)
    if folder in _loaded:
        return _loaded[folder]
    init = os.path.join(folder, "__init__.py")
    if not os.path.isfile(init):
        raise InputError(f"'{folder}' is not a node pack; expected a folder with an __init__.py")
    name = f"vsr_node_pack_{len(_loaded)}"
    spec = importlib.util.spec_from_file_location(name, init, submodule_search_locations=[folder])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    mappings = getattr(module, "NODE_CLASS_MAPPINGS", None)
    if not isinstance(mappings, dict):
        raise InputError(f"node pack '{folder}' defines no NODE_CLASS_MAPPINGS dict")
    _loaded[folder] = mappings
    return mappings
