"""Convert the UI-format workflow ComfyUI saves (nodes, links, widgets_values)
into the API/prompt format the executor runs.
"""
from __future__ import annotations

from vsr_core.api import InputError

from .shape import check_ui_shape
from .signature import declared_inputs, is_widget, node_info, widget_size

IGNORED_TYPES = {"Note", "MarkdownNote", "PrimitiveNode"}  # carry no computation
MODE_NEVER, MODE_BYPASS = 2, 4


def is_ui_format(data: dict) -> bool:
    return isinstance(data, dict) and isinstance(data.get("nodes"), list) and "links" in data


def _link_table(ui: dict) -> dict[int, tuple[int, int]]:
    """link id -> (source node id, source slot)."""
    table = {}
    for link in ui.get("links") or []:      # shape checked by shape.check_ui_shape
        if isinstance(link, dict):  # newer frontends may store links as objects
            table[link["id"]] = (link["origin_id"], link["origin_slot"])
        else:
            table[link[0]] = (link[1], link[2])
    return table


def ui_to_api(ui: dict, classes: dict[str, type] | None = None, infos: dict[str, dict] | None = None) -> dict[str, dict]:
    """API-format prompt of a UI-format workflow.

    Node signatures come from `classes` (V1 classes) and/or `infos`
    (/object_info-style descriptions, e.g. of core ComfyUI nodes).
    """
    check_ui_shape(ui, "workflow")
    known = {name: node_info(cls) for name, cls in (classes or {}).items()}
    known.update(infos or {})
    nodes = {n["id"]: n for n in ui["nodes"]}
    links = _link_table(ui)

    def source_of(link_id):
        """Follow reroutes and bypassed nodes back to the node that computes the value (a loop, not
        recursion: a chain of 10,000 reroutes is as fine as one)."""
        seen = set()
        while True:
            if link_id not in links:
                raise InputError(f"workflow link {link_id} is referenced but not defined in 'links'")
            src_id, slot = links[link_id]
            src = nodes.get(src_id)
            if src is None:
                raise InputError(f"workflow link {link_id} comes from node {src_id}, which does not exist")
            if src["type"] in IGNORED_TYPES:
                return None  # a primitive's value is already in the target's widgets_values
            if src_id in seen:
                raise InputError(f"workflow has a cycle through node {src_id}")
            if src["type"] != "Reroute" and src.get("mode") != MODE_BYPASS:
                return [str(src_id), slot]
            seen.add(src_id)
            outputs = src.get("outputs") or []
            out_type = outputs[slot].get("type") if slot < len(outputs) else None
            link_id = next((inp["link"] for inp in src.get("inputs") or [] if inp.get("link") is not None and
                            (src["type"] == "Reroute" or inp.get("type") == out_type)), None)
            if link_id is None:
                return None  # nothing feeds it: the input is left unconnected

    prompt = {}
    for node in ui["nodes"]:
        kind = node["type"]
        if kind in IGNORED_TYPES or kind == "Reroute" or node.get("mode") in (MODE_NEVER, MODE_BYPASS):
            continue
        info = known.get(kind)
        if info is None:
            raise InputError(f"node {node['id']} is a '{kind}', which is not a known node "
                             f"({', '.join(sorted(known))})")
        inputs = {}
        values = node.get("widgets_values", [])
        if isinstance(values, dict):
            inputs.update(values)
        else:
            values = list(values)
            position = 0
            for inp in declared_inputs(info):
                if not is_widget(inp) or position >= len(values):
                    continue
                inputs[inp.name] = values[position]
                position += widget_size(inp)
        for inp in node.get("inputs") or []:
            if inp.get("link") is not None:
                src = source_of(inp["link"])
                if src is not None:
                    inputs[inp["name"]] = src
        prompt[str(node["id"])] = {"class_type": kind, "inputs": inputs,
                                   "_meta": {"title": node.get("title") or kind}}
    return prompt
