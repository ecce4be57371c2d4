"""nodes/ reaches the library through one front door: every module of the node pack imports from vsr_core
only vsr_core.api (top-level and function-level imports alike), the headless runner (nodes/headless) too.
One exemption: `python -m nodes` (run_workflow.py) ends like the `vsr` command line, with its exit codes."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FRONT_DOOR = "vsr_core.api"
# the only file that may use more than the front door, and what it uses
EXEMPT = {"nodes/run_workflow.py": {"vsr_core.cli"}}


def library_imports(path: Path) -> set[str]:
    """The vsr_core modules a file imports ("from vsr_core import api" is vsr_core.api)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "vsr_core"}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "vsr_core":
                found |= {f"vsr_core.{a.name}" for a in node.names}
            elif node.module.split(".")[0] == "vsr_core":
                found.add(node.module)
    return found


def node_files() -> list[Path]:
    return sorted((ROOT / "nodes").rglob("*.py"))


def test_nodes_import_only_the_front_door():
    wrong = {}
    for path in node_files():
        name = path.relative_to(ROOT).as_posix()
        allowed = {FRONT_DOOR} | EXEMPT.get(name, set())
        extra = library_imports(path) - allowed
        if extra:
            wrong[name] = sorted(extra)
    assert wrong == {}


def test_the_check_sees_every_kind_of_import(tmp_path):
    sample = tmp_path / "m.py"
    sample.write_text("import vsr_core.video\nfrom vsr_core import api, errors\n"
                      "def f():\n    from vsr_core.jobs.upscale import upscale_file\n")
    assert library_imports(sample) == {"vsr_core.video", "vsr_core.api", "vsr_core.errors", "vsr_core.jobs.upscale"}


def test_the_front_door_is_used():
    assert sum(FRONT_DOOR in library_imports(p) for p in node_files()) >= 8
