"""vsr_core's imports run one way: layers import downwards only, no file imports itself back through
others (function-level and importlib imports included), nothing in vsr_core imports ComfyUI or nodes/ or
loads code by path; and no function of vsr_core or nodes/ runs over 80 lines."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "vsr_core"

# Lowest first. A module may import its own layer and the ones below it, never one above.
LAYERS = [
    {"errors", "progress", "machine", "safe_files", "numbers", "settings"},
    {"ops", "speed", "cpu_precision"},
    {"video", "flow", "data", "metrics", "file_identity"},
    {"models", "diffusion", "relay"},
    {"checkpoints", "weights", "samples"},
    {"train"},
    {"pipeline"},
    {"jobs"},
    {"api"},                                    # the front door: what nodes/ (and any caller) imports
    {"commands", "cli", "__main__", "__init__"},
]
FORBIDDEN = {"nodes", "comfy", "comfy_api", "comfy_extras", "folder_paths", "server"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def resolve(module: str, is_package: bool, level: int, name: str | None) -> str:
    if level == 0:
        return name or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[:len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """Every module a file imports: top-level, inside functions, and through importlib (a file that calls
    import_module is taken to import every module named by a string it holds, e.g. cli's command list)."""
    module, is_package = module_name(path), path.name == "__init__.py"
    found = set()
    tree = ast.parse(path.read_text())
    if "import_module" in {getattr(n.func, "attr", getattr(n.func, "id", None))
                           for n in ast.walk(tree) if isinstance(n, ast.Call)}:
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("."):
                level = len(node.value) - len(node.value.lstrip("."))
                target = resolve(module, is_package, level, node.value.lstrip("."))
                if target in modules:
                    found.add(target)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = resolve(module, is_package, node.level, node.module)
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None))
              in ("import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant)):
            target = node.args[0].value
            if target.startswith("."):      # import_module(".x", __package__): relative to this package
                level = len(target) - len(target.lstrip("."))
                target = resolve(module, is_package, level, target.lstrip("."))
            found.add(target)
    return found


def graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    modules = set(files)
    return {m: imports_of(p, modules) for m, p in files.items()}


def layer(module: str) -> int:
    top = module.split(".")[1] if "." in module else "__init__"
    for index, names in enumerate(LAYERS):
        if top in names:
            return index
    raise AssertionError(f"{module} belongs to no layer; add its folder to LAYERS")


def test_nothing_in_vsr_core_imports_comfyui_or_the_node_pack():
    bad = {m: sorted(i for i in imps if i.split(".")[0] in FORBIDDEN) for m, imps in graph().items()}
    assert {m: i for m, i in bad.items() if i} == {}


def test_vsr_core_loads_no_code_by_path():
    """The node pack (or any file) is never executed from inside vsr_core: the headless runner
    (nodes/headless) is part of the pack and is handed the node classes (nodes/run_workflow.py)."""
    loaders = {"spec_from_file_location", "exec_module", "run_path", "SourceFileLoader", "exec"}
    found = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            name = getattr(node, "attr", None) or getattr(node, "id", None)
            if name in loaders:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} {name}")
    assert found == []


def test_no_function_is_longer_than_80_lines():
    long = []
    for path in list(PACKAGE.rglob("*.py")) + list((ROOT / "nodes").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > 80:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({lines} lines)")
    assert long == []


def test_layers_import_downwards_only():
    edges = graph()
    up = [f"{m} -> {i}" for m, imps in edges.items() for i in imps
          if i in edges and i != m and layer(i) > layer(m)]
    assert up == []


def test_no_import_cycles_between_files():
    edges = {m: {i for i in imps if i != m} for m, imps in graph().items()}
    modules = set(edges)
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(v):                                  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v] & modules:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            # a package's __init__ re-exporting its own modules is not a cycle between files
            if len(component) > 1 and not all(c.startswith(v) or v.startswith(c) for c in component):
                cycles.append(sorted(component))

    for m in sorted(modules):
        if m not in index:
            visit(m)
    assert cycles == []


def test_the_graph_sees_function_level_and_importlib_imports():
    edges = graph()
    assert "vsr_core.commands.upscale" in edges["vsr_core.cli"]            # importlib.import_module(".commands...")
    assert "vsr_core.flow.dis" in edges["vsr_core.jobs.distributed"]      # imported inside a function


def test_comfyui_workflow_formats_live_with_the_nodes():
    """ComfyUI's file formats and the headless executor are the pack's (nodes/headless), not the library's;
    they import vsr_core and the standard library only, so `python -m nodes` needs no ComfyUI."""
    assert not (PACKAGE / "workflow").exists()
    for path in (ROOT / "nodes" / "headless").glob("*.py"):
        for name in imports_of(path, set()):
            assert name.split(".")[0] not in FORBIDDEN - {"nodes"}, f"{path.name} imports {name}"
            assert not name.startswith("nodes.") or name.startswith("nodes.headless"), \
                f"{path.name} imports {name}: the runner is handed the node classes, it does not import them"
