"""Check a workflow file against node signatures without running it.

Used on the shared workflows: every node known, every required input given,
every link between compatible types, every widget value in range and (in the
UI format) in the right position.
"""
from __future__ import annotations

from vsr_core.api import InputError

from .signature import (check_value, declared_inputs, has_upload_button, is_link, is_widget, types_match,
                        widget_size)
from .shape import check_ui_shape
from .ui_format import IGNORED_TYPES, MODE_BYPASS, MODE_NEVER, ui_to_api


def validate_prompt(prompt: dict, infos: dict[str, dict], file_inputs=frozenset()) -> list[str]:
    """Problems of an API-format prompt, as messages naming node and input; [] when valid.

    file_inputs: {(class, input)} combos that list files of the user's folders;
    any value is accepted there (as is any value of a combo with no options).
    """
    problems = []
    for node_id, node in prompt.items():
        kind = node.get("class_type")
        info = infos.get(kind)
        if info is None:
            problems.append(f"node {node_id}: unknown class '{kind}'")
            continue
        declared = {inp.name: inp for inp in declared_inputs(info)}
        given = node.get("inputs", {})
        for name in given:
            if name not in declared:
                problems.append(f"node {node_id} ({kind}): input '{name}' is not declared")
        for name, inp in declared.items():
            where = f"node {node_id} ({kind}) input '{name}'"
            if name not in given:
                if inp.required:
                    problems.append(f"{where} is required but missing")
                continue
            value = given[name]
            if is_link(value):
                src = prompt.get(str(value[0]))
                if src is None or src.get("class_type") not in infos:
                    problems.append(f"{where} links to node {value[0]}, which is missing or unknown")
                    continue
                outputs = infos[src["class_type"]]["output"]
                if not 0 <= value[1] < len(outputs):
                    problems.append(f"{where} links to output {value[1]} of node {value[0]}, which has "
                                    f"{len(outputs)}")
                elif inp.kind != "COMBO" and not types_match(inp.kind, outputs[value[1]]):
                    problems.append(f"{where} expects {inp.kind} but gets {outputs[value[1]]}")
            elif not is_widget(inp):
                problems.append(f"{where} is a {inp.kind} socket but holds the value {value!r}")
            elif inp.kind == "COMBO" and (not inp.choices or (kind, name) in file_inputs):
                if not isinstance(value, str):
                    problems.append(f"{where} = {value!r}; expected a file name")
            else:
                try:
                    check_value(where, inp, value)
                except InputError as err:
                    problems.append(str(err))
    return problems


def widget_value_counts(info: dict) -> tuple[int, int]:
    """(values a node's widgets store, the fewest a valid file may store): a workflow saved before the node
    gained trailing optional inputs stores no values for them, and the frontend gives them their defaults."""
    sizes = [(widget_size(i), i.required) for i in declared_inputs(info) if is_widget(i)]
    expected = shortest = sum(size for size, _ in sizes)
    for size, required in reversed(sizes):
        if required:
            break
        shortest -= size
    return expected, shortest


def validate_ui(ui: dict, infos: dict[str, dict], file_inputs=frozenset()) -> list[str]:
    """Problems of a UI-format workflow: positions of widget values and link types, then
    everything validate_prompt checks on its API conversion."""
    try:
        check_ui_shape(ui, "workflow")
    except InputError as err:
        return [str(err)]
    problems = []
    nodes = {n["id"]: n for n in ui["nodes"]}
    for node in ui["nodes"]:
        kind = node["type"]
        if kind in IGNORED_TYPES or kind == "Reroute" or node.get("mode") in (MODE_NEVER, MODE_BYPASS):
            continue
        info = infos.get(kind)
        if info is None:
            problems.append(f"node {node['id']}: unknown type '{kind}'")
            continue
        values = node.get("widgets_values", [])
        if isinstance(values, list):
            expected, shortest = widget_value_counts(info)
            if has_upload_button(info) and len(values) == expected + 1:
                expected += 1                    # saved by a frontend that shows the upload button
            if not shortest <= len(values) <= expected:
                problems.append(f"node {node['id']} ({kind}) has {len(values)} widget values; its widgets "
                                f"take {expected}")
        for i, out in enumerate(node.get("outputs") or []):
            if i < len(info["output"]) and out.get("type") != info["output"][i]:
                problems.append(f"node {node['id']} ({kind}) output {i} is typed {out.get('type')}, "
                                f"declared {info['output'][i]}")
    for link in ui.get("links") or []:
        if isinstance(link, dict):
            link = [link.get(k) for k in ("id", "origin_id", "origin_slot", "target_id", "target_slot", "type")]
        link_id, src, slot, dst, dst_slot, typ = (list(link[:6]) + [None])[:6]
        if typ is None:
            problems.append(f"link {link_id} has no type")
            continue
        if src not in nodes or dst not in nodes:
            problems.append(f"link {link_id} joins missing nodes {src} -> {dst}")
            continue
        src_info = infos.get(nodes[src]["type"])
        if src_info and slot < len(src_info["output"]) and not types_match(typ, src_info["output"][slot]):
            problems.append(f"link {link_id} is typed {typ} but node {src} output {slot} is "
                            f"{src_info['output'][slot]}")
        dst_inputs = nodes[dst].get("inputs") or []
        if dst_slot >= len(dst_inputs) or dst_inputs[dst_slot].get("link") != link_id:
            problems.append(f"link {link_id} does not arrive at input {dst_slot} of node {dst}")
    if problems:
        return problems
    try:
        prompt = ui_to_api(ui, infos=infos)
    except InputError as err:
        return [str(err)]
    return validate_prompt(prompt, infos, file_inputs)
