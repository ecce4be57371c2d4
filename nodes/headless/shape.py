"""The shape of a workflow file, checked once before anything reads it.

JSON from disk can hold anything: a node that is a number, a class_type that
is a list, a link with two fields. Every reader after this check (the UI
converter, the planner, --set) may then index without guarding, and a
malformed file is one line naming the node or link, never a traceback.
"""
from __future__ import annotations

from vsr_core.api import InputError

_SCALAR_ID = (int, str)


def _kind(value) -> str:
    return {dict: "an object", list: "a list", str: "text", bool: "a boolean"}.get(
        type(value), "a number" if isinstance(value, (int, float)) else f"a {type(value).__name__}")


def _fail(where: str, what: str, value, expected: str):
    found = "missing (or null)" if value is None else f"{_kind(value)} {_short(value)}"
    raise InputError(f"{where}: {what} is {found}; expected {expected}")


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_api_shape(prompt: dict, where: str) -> None:
    """{node id: {"class_type": text, "inputs": {name: value}, "_meta": {"title": text}}}."""
    for node_id, node in prompt.items():
        at = f"{where} node {node_id}"
        if not isinstance(node, dict):
            _fail(at, "the node", node, "an object {class_type, inputs}")
        if not isinstance(node.get("class_type"), str):
            _fail(at, "'class_type'", node.get("class_type"), "the node's class name as text")
        if not isinstance(node.get("inputs", {}), dict):
            _fail(at, "'inputs'", node.get("inputs"), "an object {input name: value or [node id, output]}")
        meta = node.get("_meta", {})
        if not isinstance(meta, dict) or not isinstance(meta.get("title", ""), str):
            _fail(at, "'_meta'", meta, 'an object such as {"title": "Load Video"}')


def _check_ui_node(node, where: str) -> None:
    if not isinstance(node, dict):
        _fail(where, "a node", node, "an object {id, type, inputs, outputs, widgets_values}")
    at = f"{where} node {_short(node.get('id'))}"
    if not isinstance(node.get("id"), _SCALAR_ID) or isinstance(node.get("id"), bool):
        _fail(at, "'id'", node.get("id"), "a number")
    if not isinstance(node.get("type"), str):
        _fail(at, "'type'", node.get("type"), "the node's class name as text")
    if node.get("mode", 0) is not None and not _is_int(node.get("mode", 0)):
        _fail(at, "'mode'", node.get("mode"), "a number")
    if not isinstance(node.get("widgets_values", []), (list, dict)):
        _fail(at, "'widgets_values'", node.get("widgets_values"), "a list of widget values")
    for field in ("inputs", "outputs"):
        slots = node.get(field) or []
        if not isinstance(slots, list) or not all(isinstance(s, dict) for s in slots):
            _fail(at, f"'{field}'", slots, "a list of objects {name, type, link}")
    for slot in node.get("inputs") or []:
        link = slot.get("link")
        if link is not None and not isinstance(link, _SCALAR_ID) or isinstance(link, bool):
            _fail(at, f"input {_short(slot.get('name'))}'s link", link, "a link id or null")
        if not isinstance(slot.get("name", ""), str):
            _fail(at, "an input's 'name'", slot.get("name"), "text")


def _check_ui_link(link, where: str) -> None:
    """[id, from node, from slot, to node, to slot, type] or the object form {id, origin_id, ...}."""
    if isinstance(link, dict):
        fields = [link.get(k) for k in ("id", "origin_id", "origin_slot", "target_id", "target_slot")]
        fields.append(link.get("type"))
    elif isinstance(link, list) and len(link) >= 5:
        fields = list(link[:6]) + [None] * (6 - len(link[:6]))
    else:
        _fail(where, "a link", link, "[id, from node, from slot, to node, to slot, type]")
    at = f"{where} link {_short(fields[0])}"
    names = ("id", "source node", "source slot", "target node", "target slot")
    for name, value in zip(names, fields):
        ok = _is_int(value) and value >= 0 if "slot" in name else isinstance(value, _SCALAR_ID) and \
            not isinstance(value, bool)
        if not ok:
            _fail(at, f"its {name}", value, "a number >= 0" if "slot" in name else "a node or link id")
    if fields[5] is not None and not isinstance(fields[5], str):
        _fail(at, "its type", fields[5], "a type name such as IMAGE")


def check_ui_shape(ui: dict, where: str) -> None:
    """The UI format ComfyUI saves: a list of node objects and a list of links."""
    for node in ui["nodes"]:
        _check_ui_node(node, where)
    links = ui.get("links") or []
    if not isinstance(links, list):
        _fail(where, "'links'", links, "a list of links")
    for link in links:
        _check_ui_link(link, where)
