"""The shared UI workflows are made from their API twins: `python -m nodes.ui_workflows` rewrites
workflows/*.json from workflows/api/*.json, keeping each file's notes (its Note nodes), with the
layout of nodes/headless/ui_export.py (readable on a 1600x900 window, stages grouped).

Core ComfyUI nodes are described by tests/fixtures/comfyui/core_nodes_v0.8.0.json (GET /object_info
of ComfyUI v0.8.0), so no ComfyUI is needed.
"""
from __future__ import annotations

import json
import os
import sys

from . import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
from .headless import api_to_ui, node_info

PACK = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKFLOWS = os.path.join(PACK, "workflows")
CORE_NODES = os.path.join(PACK, "tests", "fixtures", "comfyui", "core_nodes_v0.8.0.json")


def infos_and_titles() -> tuple[dict, dict]:
    infos = {k: node_info(c) for k, c in NODE_CLASS_MAPPINGS.items()}
    with open(CORE_NODES) as f:
        core = json.load(f)
    infos.update(core)
    titles = {k: v.get("display_name", k) for k, v in core.items()}
    titles.update(NODE_DISPLAY_NAME_MAPPINGS)
    return infos, titles


def notes_of(ui: dict) -> dict[str, str]:
    return {n.get("title") or "About this workflow": n["widgets_values"][0]
            for n in ui["nodes"] if n["type"] in ("Note", "MarkdownNote")}


def ui_workflow(name: str, infos: dict, titles: dict) -> dict:
    """workflows/NAME.json as made from workflows/api/NAME.json and the notes it holds now."""
    with open(os.path.join(WORKFLOWS, "api", name)) as f:
        prompt = json.load(f)
    with open(os.path.join(WORKFLOWS, name)) as f:
        notes = notes_of(json.load(f))
    return api_to_ui(prompt, infos, notes=notes, titles=titles)


def main() -> int:
    infos, titles = infos_and_titles()
    for name in sorted(os.listdir(os.path.join(WORKFLOWS, "api"))):
        if name.endswith(".json") and os.path.exists(os.path.join(WORKFLOWS, name)):
            ui = ui_workflow(name, infos, titles)
            with open(os.path.join(WORKFLOWS, name), "w") as f:
                f.write(json.dumps(ui, indent=1) + "\n")
            print(f"workflows/{name}: {len(ui['nodes'])} nodes, view scale {ui['extra']['ds']['scale']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
