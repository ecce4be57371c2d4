"""API-format prompt -> the UI-format workflow ComfyUI saves and loads by drag-and-drop.

The layout is made to be read on a 1600x900 window without panning or zooming:
nodes stand in columns by dependency (ordered within a column so wires cross
as little as possible), are as tall as their sockets and widgets, wrap into a
second band when one row would need a scale the frontend draws as empty boxes,
and each column is a titled group; the saved view (`extra.ds`) frames it all
clear of the frontend's sidebar, tab bar and minimap.
"""
from __future__ import annotations

import math
import uuid

from vsr_core.api import InputError

from .signature import declared_inputs, has_seed_control, has_upload_button, is_link, is_widget

NODE_WIDTH, COLUMN_GAP, ROW_GAP, BAND_GAP = 300, 50, 24, 60
NOTE_WIDTH = 300
TITLE_H, SLOT_H, WIDGET_H = 30, 20, 24          # LiteGraph's title bar, socket row and widget row (pixels)
PREVIEW_H = 190                                 # the frontend shows the picked file of an upload list below it
GROUP_PAD, GROUP_TITLE = 12, 34
# Screen area of a 1600x900 window that the frontend (1.35) leaves to the canvas: right of the sidebar,
# below the tab and title bars; the first keeps clear of the minimap's corner by staying low, the
# second by staying narrow.
VIEW_AREAS = ((80, 120, 1560, 630), (80, 120, 1320, 870))
MIN_SCALE, MAX_SCALE = 0.6, 1.0                 # below 0.6 the frontend draws nodes as empty boxes


def _depths(prompt: dict) -> dict[str, int]:
    """Column of each node: one right of its deepest input; nodes without inputs just left of their
    first consumer."""
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
    # A loader stands just left of its first consumer, not in the first column (shorter columns).
    for nid, node in prompt.items():
        consumers = [depth[c] for c, other in prompt.items()
                     if any(is_link(v) and str(v[0]) == nid for v in other.get("inputs", {}).values())]
        if depth[nid] == 0 and consumers:
            depth[nid] = max(0, min(consumers) - 1)
    return depth


def _node_entry(nid: str, node: dict, info: dict, index: int, title: str | None) -> dict:
    """The node as the frontend stores it: sockets, widget values (by position), a fitted size."""
    given = node.get("inputs", {})
    inputs, values, widgets = [], [], 0
    for inp in declared_inputs(info):
        linked = is_link(given.get(inp.name))
        if is_widget(inp):
            value = given.get(inp.name, inp.options.get("default", inp.choices[0] if inp.choices else None))
            values.append(value if not linked else inp.options.get("default", value))
            widgets += 3 if inp.options.get("multiline") else 1       # a text box is about three rows
            if has_seed_control(inp):
                values.append("fixed")
                widgets += 1
            if linked:
                inputs.append({"name": inp.name, "type": inp.kind, "widget": {"name": inp.name}, "link": None})
        else:
            entry = {"name": inp.name, "type": inp.kind, "link": None}
            if not inp.required:
                entry["shape"] = 7  # how the frontend draws optional sockets
            inputs.append(entry)
    preview = 0
    if has_upload_button(info):
        values.append("image")           # the frontend's upload button comes last and saves this value
        widgets, preview = widgets + 1, PREVIEW_H
    sockets = sum(1 for i in inputs if "widget" not in i)
    height = max(sockets, len(info["output"])) * SLOT_H + widgets * WIDGET_H + 12 + preview
    entry = {"id": int(nid), "type": node["class_type"], "pos": [0, 0], "size": [NODE_WIDTH, max(height, 46)],
             "flags": {}, "order": index, "mode": 0, "inputs": inputs,
             "outputs": [{"name": name, "type": typ, "links": [], "slot_index": i}
                         for i, (typ, name) in enumerate(zip(info["output"], info["output_name"]))],
             "properties": {"Node name for S&R": node["class_type"]}, "widgets_values": values}
    if title:
        entry["title"] = title
    return entry


def _columns(prompt: dict, depth: dict[str, int]) -> list[list[str]]:
    """Node ids per column; within a column, ordered by where their inputs come from (fewer crossings)."""
    columns: list[list[str]] = [[] for _ in range(max(depth.values(), default=0) + 1)]
    for nid in sorted(prompt, key=int):
        columns[depth[nid]].append(nid)
    rank: dict[str, float] = {nid: i for i, nid in enumerate(columns[0])}
    for col in columns[1:]:
        def centre(nid):
            ups = [rank[str(v[0])] + v[1] * 0.01 for v in prompt[nid].get("inputs", {}).values()
                   if is_link(v) and str(v[0]) in rank]
            return sum(ups) / len(ups) if ups else math.inf
        col.sort(key=lambda nid: (centre(nid), int(nid)))
        rank.update({nid: i for i, nid in enumerate(col)})
    return columns


def _bands(columns: list, heights: dict, note_height: float) -> list[tuple[float, float, list[int]]]:
    """Candidate arrangements: the note and columns cut into 1 to 3 bands at every possible place;
    each as (width, height, the slot each band starts at)."""
    widths = [NOTE_WIDTH + COLUMN_GAP] + [NODE_WIDTH + COLUMN_GAP] * len(columns)
    # a group: its title, then each node's title bar and body with gaps between, and a margin below
    col_h = [note_height] + [GROUP_TITLE + sum(heights[n] + TITLE_H + ROW_GAP for n in c) - ROW_GAP + GROUP_PAD
                             for c in columns]
    slots, out = len(widths), []
    cuts = [()] + [(a,) for a in range(1, slots)] + [(a, b) for a in range(1, slots) for b in range(a + 1, slots)]
    for cut in cuts:
        starts = [0, *cut]
        spans = list(zip(starts, [*cut, slots]))
        w = max(sum(widths[a:b]) for a, b in spans) - COLUMN_GAP + 2 * GROUP_PAD
        h = sum(max(col_h[a:b]) for a, b in spans) + BAND_GAP * (len(spans) - 1)
        out.append((w, h, starts))
    return out


def _view(width: float, height: float) -> tuple[float, tuple[int, int, int, int]]:
    """The largest scale (and screen area) at which a width x height layout fits the window."""
    return max((min(MAX_SCALE, (x1 - x0) / width, (y1 - y0) / height), (x0, y0, x1, y1))
               for x0, y0, x1, y1 in VIEW_AREAS)


def _place(nodes: dict, columns: list, note: dict | None) -> tuple[list, dict]:
    """Position notes and nodes (band by band, column by column); returns (groups, extra.ds)."""
    heights = {nid: nodes[nid]["size"][1] for c in columns for nid in c}
    note_h = (note["size"][1] + TITLE_H) if note else 0
    options = [(_view(w, h), starts) for w, h, starts in _bands(columns, heights, note_h)]
    (scale, area), starts = max(options, key=lambda o: o[0][0])
    cols = [None] + columns                     # slot 0 holds the note
    groups, y0 = [], 0.0
    for b, s in enumerate(starts):
        stop = starts[b + 1] if b + 1 < len(starts) else len(cols)
        x, band_h = 0.0, 0.0
        for ci in range(s, stop):
            if ci == 0:
                if note:
                    note["pos"] = [x, y0 + TITLE_H]
                    band_h = max(band_h, note_h)
                x += NOTE_WIDTH + COLUMN_GAP
                continue
            y = y0 + GROUP_TITLE + TITLE_H
            for nid in cols[ci]:
                nodes[nid]["pos"] = [x, y]
                y += heights[nid] + TITLE_H + ROW_GAP
            bottom = y - TITLE_H - ROW_GAP + GROUP_PAD     # y is where a next node's title would start
            groups.append(_group(ci, len(columns), cols[ci], nodes, x, y0, bottom))
            band_h = max(band_h, bottom - y0)
            x += NODE_WIDTH + COLUMN_GAP
        y0 += band_h + BAND_GAP
    # the layout's left edge (a group's margin) and top (group titles) at the area's corner
    return groups, {"scale": round(scale, 3), "offset": [round(area[0] / scale + GROUP_PAD, 1),
                                                          round(area[1] / scale, 1)]}


def _group(ci: int, count: int, ids: list, nodes: dict, x: float, top: float, bottom: float) -> dict:
    names = []
    for nid in ids:
        name = nodes[nid].get("title") or nodes[nid]["type"]
        name = name.split(" (VSR")[0]
        if name not in names:
            names.append(name)
    joined = " + ".join(names)
    if len(joined) > 26:                        # a group title wider than its group runs into the next
        joined = names[0] if len(names) == 1 else f"{names[0]} and more"
    name = "Inputs and models" if ci == 1 else "Output" if ci == count and count > 1 else joined
    return {"title": f"{ci}. {name}", "bounding": [x - GROUP_PAD, top, NODE_WIDTH + 2 * GROUP_PAD, bottom - top],
            "color": "#3f789e", "font_size": 22, "flags": {}}


def _link(nodes: dict, prompt: dict, order: list) -> list:
    links = []
    for nid in order:
        for slot, entry in enumerate(nodes[nid]["inputs"]):
            value = prompt[nid].get("inputs", {}).get(entry["name"])
            if not is_link(value):
                continue
            src, src_slot = str(value[0]), value[1]
            link_id = len(links) + 1
            links.append([link_id, int(src), src_slot, int(nid), slot, nodes[src]["outputs"][src_slot]["type"]])
            entry["link"] = link_id
            nodes[src]["outputs"][src_slot]["links"].append(link_id)
    for n in nodes.values():
        for out in n["outputs"]:
            out["links"] = out["links"] or None
    return links


def api_to_ui(prompt: dict, infos: dict[str, dict], notes: dict[str, str] | None = None,
              titles: dict[str, str] | None = None) -> dict:
    """A UI workflow of a prompt, laid out for a 1600x900 window (see the module doc).

    `notes` adds Note nodes {title: text} (the first stands left of the graph); `titles` gives node
    titles by class (e.g. display names) where the prompt's `_meta` has none."""
    depth = _depths(prompt)
    columns = _columns(prompt, depth)
    order = [nid for col in columns for nid in col]
    nodes = {}
    for index, nid in enumerate(order):
        kind = prompt[nid]["class_type"]
        if kind not in infos:
            raise InputError(f"node {nid}: unknown class '{kind}'")
        title = prompt[nid].get("_meta", {}).get("title")
        title = (titles or {}).get(kind, title) if title in (None, kind) else title
        nodes[nid] = _node_entry(nid, prompt[nid], infos[kind], index, title if title != kind else None)
    last_id = max(int(n) for n in prompt)
    extra = [{"id": last_id + 1 + k, "type": "Note", "title": title, "pos": [0, 0],
              "size": [NOTE_WIDTH, 40 + 17 * math.ceil(len(text) / 38)], "flags": {}, "order": len(order) + k,
              "mode": 0, "inputs": [], "outputs": [], "properties": {}, "widgets_values": [text]}
             for k, (title, text) in enumerate((notes or {}).items())]
    groups, ds = _place(nodes, columns, extra[0] if extra else None)
    for k, note in enumerate(extra[1:], start=1):           # further notes under the first
        note["pos"] = [extra[0]["pos"][0], extra[k - 1]["pos"][1] + extra[k - 1]["size"][1] + TITLE_H + ROW_GAP]
    links = _link(nodes, prompt, order)
    all_nodes = list(nodes.values()) + extra
    return {"id": str(uuid.uuid5(uuid.NAMESPACE_URL, repr(sorted(prompt)))), "revision": 0,
            "last_node_id": max(n["id"] for n in all_nodes), "last_link_id": len(links),
            "nodes": all_nodes, "links": links, "groups": groups, "config": {},
            "extra": {"ds": ds}, "version": 0.4}
