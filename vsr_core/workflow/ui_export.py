"""API-format prompt -> the UI-format workflow ComfyUI saves and loads by drag-and-drop."""
from __future__ import annotations

import uuid

from ..errors import InputError
from .signature import declared_inputs, has_seed_control, is_link, is_widget

COLUMN_WIDTH, ROW_GAP, NODE_WIDTH = 380, 40, 340


def _depths(prompt: dict) -> dict[str, int]:
    """Column of each node: one right of its deepest input."""
    depth: dict[str, int] = {}

    def visit(nid: str, seen=()) -> int:
        if nid in depth:
            return depth[nid]
        if nid in seen:
            raise InputError(f"workflow has a cycle through node {nid}")
        ups = [visit(str(v[0]), seen + (nid,)) + 1 for v in prompt[nid].get("inputs", {}).values()
               if is_link(v) and str(v[0]) in prompt]
        depth[nid] = max(ups, default=0)
        return depth[nid]

    for nid in prompt:
        visit(nid)
    return depth


def api_to_ui(prompt: dict, infos: dict[str, dict], notes: dict[str, str] | None = None) -> dict:
    """A UI workflow laid out in columns by dependency; `notes` adds Note nodes {title: text}."""
    depth = _depths(prompt)
    order = sorted(prompt, key=lambda n: (depth[n], int(n)))
    nodes, links = {}, []
    rows: dict[int, float] = {}
    for index, nid in enumerate(order):
        node = prompt[nid]
        kind = node["class_type"]
        info = infos.get(kind)
        if info is None:
            raise InputError(f"node {nid}: unknown class '{kind}'")
        declared = declared_inputs(info)
        given = node.get("inputs", {})
        inputs, values = [], []
        for inp in declared:
            linked = is_link(given.get(inp.name))
            if is_widget(inp):
                value = given.get(inp.name, inp.options.get("default", inp.choices[0] if inp.choices else None))
                values.append(value if not linked else inp.options.get("default", value))
                if has_seed_control(inp):
                    values.append("fixed")
                if linked:
                    inputs.append({"name": inp.name, "type": inp.kind, "widget": {"name": inp.name},
                                   "link": None})
            else:
                entry = {"name": inp.name, "type": inp.kind, "link": None}
                if not inp.required:
                    entry["shape"] = 7  # how the frontend draws optional sockets
                inputs.append(entry)
        height = 60 + 26 * (len(inputs) + len(info["output"])) + 30 * len(values)
        col = depth[nid]
        y = rows.get(col, 0.0)
        rows[col] = y + height + ROW_GAP
        nodes[nid] = {"id": int(nid), "type": kind, "pos": [40 + col * COLUMN_WIDTH, 40 + y],
                      "size": [NODE_WIDTH, height], "flags": {}, "order": index, "mode": 0,
                      "inputs": inputs,
                      "outputs": [{"name": name, "type": typ, "links": [], "slot_index": i}
                                  for i, (typ, name) in enumerate(zip(info["output"], info["output_name"]))],
                      "properties": {"Node name for S&R": kind}, "widgets_values": values}
        title = node.get("_meta", {}).get("title")
        if title and title != kind:
            nodes[nid]["title"] = title
    for nid in order:
        for slot, entry in enumerate(nodes[nid]["inputs"]):
            value = prompt[nid].get("inputs", {}).get(entry["name"])
            if not is_link(value):
                continue
            src, src_slot = str(value[0]), value[1]
            link_id = len(links) + 1
            typ = nodes[src]["outputs"][src_slot]["type"]
            links.append([link_id, int(src), src_slot, int(nid), slot, typ])
            entry["link"] = link_id
            nodes[src]["outputs"][src_slot]["links"].append(link_id)
    last_id = max(int(n) for n in prompt)
    extra_nodes = []
    for k, (title, text) in enumerate((notes or {}).items()):
        extra_nodes.append({"id": last_id + 1 + k, "type": "Note", "title": title,
                            "pos": [40 + k * 440, -200], "size": [420, 160], "flags": {},
                            "order": len(order) + k, "mode": 0, "inputs": [], "outputs": [],
                            "properties": {}, "widgets_values": [text]})
    for n in nodes.values():
        for out in n["outputs"]:
            out["links"] = out["links"] or None
    all_nodes = list(nodes.values()) + extra_nodes
    return {"id": str(uuid.uuid5(uuid.NAMESPACE_URL, repr(sorted(prompt)))), "revision": 0,
            "last_node_id": max(n["id"] for n in all_nodes), "last_link_id": len(links),
            "nodes": all_nodes, "links": links, "groups": [], "config": {},
            "extra": {"ds": {"scale": 0.8, "offset": [0, 0]}}, "version": 0.4}
