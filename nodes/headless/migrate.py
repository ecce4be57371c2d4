"""Workflows saved before an input was renamed keep working.

A node class may list its former input names in ``RENAMED_INPUTS`` ({old: new}).
UI-format files store widget values by position, so a rename does not touch them;
API-format prompts (and links into converted widgets) name inputs, so their old
names are mapped here before the prompt is checked and run.
"""
from __future__ import annotations


def renamed_inputs(cls) -> dict[str, str]:
    return dict(getattr(cls, "RENAMED_INPUTS", {}) or {})


def current_name(cls, name: str) -> str:
    """The input's name today (``name`` itself when it was never renamed)."""
    return renamed_inputs(cls).get(name, name)


def rename_old_inputs(prompt: dict[str, dict], classes: dict[str, type]) -> list[str]:
    """Rename inputs saved under former names, in place; returns one note per rename."""
    notes = []
    for node_id, node in prompt.items():
        cls = classes.get(node.get("class_type"))
        inputs = node.get("inputs")
        if cls is None or not isinstance(inputs, dict):
            continue
        renames = {old: new for old, new in renamed_inputs(cls).items() if old in inputs and new not in inputs}
        if renames:
            node["inputs"] = {renames.get(k, k): v for k, v in inputs.items()}     # order kept
            notes += [f"node {node_id} ({node['class_type']}): input '{old}' is now '{new}'"
                      for old, new in renames.items()]
    return notes
