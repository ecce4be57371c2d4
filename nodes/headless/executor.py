"""Run an API-format workflow with V1 node classes, as ComfyUI's executor would.

Only output nodes and what they depend on run, each once, in dependency
order. Inputs are checked against each class's INPUT_TYPES before anything
runs, so a bad workflow fails in seconds with the node id in the message.
"""
from __future__ import annotations

import inspect
import json

from vsr_core.api import InputError, Reporter, get_reporter

from .migrate import current_name, rename_old_inputs
from .shape import check_api_shape, check_ui_shape
from .signature import WIDGET_TYPES, check_value, declared_inputs, is_link, is_widget, node_info, types_match
from .ui_format import is_ui_format, ui_to_api


def load_workflow(path: str, classes: dict[str, type]) -> dict[str, dict]:
    """Read a workflow file in API or UI format; returns the API format."""
    try:
        with open(path, encoding="utf-8-sig") as f:
            data = json.load(f)
    except OSError as err:
        raise InputError(f"cannot read workflow '{path}': {err}") from None
    except UnicodeDecodeError as err:
        raise InputError(f"workflow '{path}' is not a text file (byte {err.start} is not UTF-8); expected the "
                         f"JSON file ComfyUI saves") from None
    except json.JSONDecodeError as err:
        raise InputError(f"workflow '{path}' is not valid JSON: {err}") from None
    except RecursionError:
        raise InputError(f"workflow '{path}' nests lists or objects too deeply to read; expected a ComfyUI "
                         f"workflow (a few levels deep)") from None
    if is_ui_format(data):
        check_ui_shape(data, f"workflow '{path}'")
        prompt = ui_to_api(data, classes)
        rename_old_inputs(prompt, classes)       # links into converted widgets carry input names
        return prompt
    if isinstance(data, dict) and isinstance(data.get("prompt"), dict):
        data = data["prompt"]  # the body of a POST /prompt request
    if not isinstance(data, dict) or not all(isinstance(v, dict) and "class_type" in v for v in data.values()):
        if isinstance(data, dict) and any(isinstance(v, dict) and "class_type" in v for v in data.values()):
            check_api_shape(data, f"workflow '{path}'")     # names the node that is not one
        raise InputError(f"workflow '{path}' is neither API format ({{id: {{class_type, inputs}}}}) nor the "
                         f"UI format ComfyUI saves (nodes + links)")
    check_api_shape(data, f"workflow '{path}'")
    rename_old_inputs(data, classes)
    return data


def apply_overrides(prompt: dict[str, dict], settings: list[str], classes: dict[str, type] | None = None) -> None:
    """Apply NODE.INPUT=VALUE settings; NODE is a node id, title or (unique) class name.

    VALUE is parsed as JSON when it can be (numbers, true/false), else kept as text.
    With ``classes``, INPUT must be one the node declares (a typo is an error, not ignored).
    """
    for setting in settings:
        target, sep, raw = setting.partition("=")
        node_key, dot, name = target.rpartition(".")
        if not sep or not dot or not node_key or not name:
            raise InputError(f"--set {setting!r}; expected NODE.INPUT=VALUE, e.g. 1.frame_load_cap=16")
        matches = [nid for nid, n in prompt.items()
                   if node_key in (nid, n.get("class_type"), n.get("_meta", {}).get("title"))]
        if len(matches) != 1:
            what = "no node" if not matches else f"{len(matches)} nodes ({', '.join(matches)})"
            raise InputError(f"--set {setting!r}: '{node_key}' matches {what}; use a node id")
        node = prompt[matches[0]]
        if classes is not None and node.get("class_type") in classes:
            name = current_name(classes[node["class_type"]], name)
            names = [d.name for d in declared_inputs(node_info(classes[node["class_type"]]))]
            if name not in names:
                raise InputError(f"--set {setting!r}: node {matches[0]} ({node['class_type']}) has no input "
                                 f"'{name}'; expected one of {', '.join(names)}")
        try:
            value = json.loads(raw)
        except (json.JSONDecodeError, RecursionError):
            value = raw
        node.setdefault("inputs", {})[name] = value


def _plan(prompt: dict[str, dict], classes: dict[str, type]) -> list[str]:
    """Check every node and link; return the ids to run, dependencies first."""
    for node_id, node in prompt.items():
        if node.get("class_type") not in classes:
            raise InputError(f"node {node_id} has class '{node.get('class_type')}', which this pack does not "
                             f"have; expected one of {', '.join(sorted(classes))}")
    outputs = [nid for nid, n in prompt.items() if getattr(classes[n["class_type"]], "OUTPUT_NODE", False)]
    if not outputs:
        raise InputError("workflow has no output node (such as a Save Video node), so nothing would run")
    order, state = [], {}
    for nid in outputs:
        _visit(nid, prompt, classes, state, order)
    return order


def _check_links(node_id: str, prompt: dict[str, dict], classes: dict[str, type]) -> list[str]:
    """The ids of the nodes `node_id` links to, each link checked (source exists, output exists, types)."""
    node = prompt[node_id]
    declared = {d.name: d for d in declared_inputs(node_info(classes[node["class_type"]]))}
    sources = []
    for name, value in node.get("inputs", {}).items():
        if not is_link(value):
            continue
        src_id, slot = str(value[0]), value[1]
        if src_id not in prompt:
            raise InputError(f"node {node_id} input '{name}' links to node {src_id}, which does not exist")
        src_cls = classes[prompt[src_id]["class_type"]]
        if not 0 <= slot < len(src_cls.RETURN_TYPES):
            raise InputError(f"node {node_id} input '{name}' links to output {slot} of node {src_id}, "
                             f"which has {len(src_cls.RETURN_TYPES)} outputs")
        if name in declared:
            want, got = declared[name].kind, src_cls.RETURN_TYPES[slot]
            if want != "COMBO" and not types_match(want, got):
                raise InputError(f"node {node_id} input '{name}' expects {want} but node {src_id} "
                                 f"output {slot} gives {got}")
        sources.append(src_id)
    return sources


def _visit(start: str, prompt: dict[str, dict], classes: dict[str, type], state: dict, order: list) -> None:
    """Depth-first from `start`, appending each node after its sources; an explicit stack, not recursion,
    so a chain of 10,000 nodes is planned like a chain of three."""
    stack = [(start, None)]       # (node id, its sources still to visit; None before the first visit)
    while stack:
        node_id, pending = stack[-1]
        if pending is None:
            if state.get(node_id) == "done":
                stack.pop()
                continue
            if state.get(node_id) == "visiting":
                path = [n for n, _ in stack]
                raise InputError(f"workflow has a cycle: {' -> '.join(path[path.index(node_id):])}")
            state[node_id] = "visiting"
            pending = _check_links(node_id, prompt, classes)[::-1]
            stack[-1] = (node_id, pending)
        if pending:
            stack.append((pending.pop(), None))
            continue
        stack.pop()
        state[node_id] = "done"
        order.append(node_id)


def _own_checks(cls) -> set[str]:
    """Inputs the node's VALIDATE_INPUTS names: as in ComfyUI, their range and list checks are its own."""
    hook = getattr(cls, "VALIDATE_INPUTS", None)
    return set(inspect.signature(hook).parameters) if hook is not None else set()


def _gather_inputs(node_id: str, node: dict, cls, results: dict | None) -> dict:
    """The keyword arguments for a node; with results=None, only check its literals."""
    given = node.get("inputs", {})
    kwargs = {}
    own = _own_checks(cls)
    for inp in declared_inputs(node_info(cls)):
        name = inp.name
        if name in given and is_link(given[name]):
            if results is not None:
                kwargs[name] = results[str(given[name][0])][given[name][1]]
        elif name in own and name in given:
            kwargs[name] = given[name]
        elif name in given and inp.kind not in WIDGET_TYPES and inp.kind != "COMBO":
            raise InputError(f"node {node_id} ({node['class_type']}) input '{name}' is a socket of type "
                             f"{inp.kind} but holds the value {given[name]!r:.60}; expected a link [node id, output]")
        elif name in given:
            kwargs[name] = check_value(f"node {node_id} ({node['class_type']}) input '{name}'", inp, given[name])
        elif inp.required and is_widget(inp) and "default" in inp.options:
            kwargs[name] = inp.options["default"]
        elif inp.required and inp.kind == "COMBO" and inp.choices:
            kwargs[name] = inp.choices[0]
        elif inp.required:
            raise InputError(f"node {node_id} ({node['class_type']}) is missing required input '{name}' "
                             f"({inp.kind})")
    return kwargs


def _validate_inputs(node_id: str, node: dict, cls, literals: dict) -> None:
    """ComfyUI's VALIDATE_INPUTS hook: called with the literal inputs it names; True or an error message."""
    hook = getattr(cls, "VALIDATE_INPUTS", None)
    if hook is None:
        return
    wanted = inspect.signature(hook).parameters
    result = hook(**{k: v for k, v in literals.items() if k in wanted})
    if result is not True:
        raise InputError(f"node {node_id} ({node['class_type']}): {result}")


def run_prompt(prompt: dict[str, dict], classes: dict[str, type],
               reporter: Reporter | None = None) -> dict[str, dict]:
    """Execute the workflow; returns {node id: {"result": tuple, "ui": dict|None}}."""
    reporter = get_reporter(reporter)
    order = _plan(prompt, classes)
    for node_id in order:  # validate every literal (and each node's own checks) before running anything
        cls = classes[prompt[node_id]["class_type"]]
        literals = _gather_inputs(node_id, prompt[node_id], cls, None)
        _validate_inputs(node_id, prompt[node_id], cls, literals)
    results, record = {}, {}
    for node_id in order:
        reporter.check_interrupt()
        node = prompt[node_id]
        cls = classes[node["class_type"]]
        kwargs = _gather_inputs(node_id, node, cls, results)
        reporter.log(f"[{node_id}] {node['class_type']}")
        out = getattr(cls(), cls.FUNCTION)(**kwargs)
        ui = None
        if isinstance(out, dict):
            ui, out = out.get("ui"), out.get("result", ())
        results[node_id] = tuple(out or ())
        record[node_id] = {"result": results[node_id], "ui": ui}
    return record
