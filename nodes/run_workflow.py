"""`python -m nodes WORKFLOW.json`: run a ComfyUI workflow of this pack's nodes without ComfyUI.

The runner in nodes/headless takes the node classes as an argument; this
pack hands it its own, so the same classes run here and in ComfyUI.
"""
from __future__ import annotations

import argparse

from vsr_core.cli import exit_code
from vsr_core.api import TerminalReporter
from . import NODE_CLASS_MAPPINGS
from .comfy_bridge import headless_output_directory
from .headless import apply_overrides, load_workflow, run_prompt


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m nodes",
                                description="Execute a ComfyUI workflow (API or UI format) made of this pack's "
                                            "nodes, in dependency order, with the classes ComfyUI loads. Run "
                                            "from the pack's folder.")
    p.add_argument("workflow")
    p.add_argument("--set", dest="settings", action="append", default=[], metavar="NODE.INPUT=VALUE",
                   help="override an input, e.g. --set 1.video=clip.mp4 (NODE: id, title or class)")
    p.add_argument("--output-dir", default=None,
                   help="where Save nodes write (default: ./output, or VSR_OUTPUT_DIR)")
    return p


def run(args) -> int:
    prompt = load_workflow(args.workflow, NODE_CLASS_MAPPINGS)
    apply_overrides(prompt, args.settings, NODE_CLASS_MAPPINGS)
    with headless_output_directory(args.output_dir):
        record = run_prompt(prompt, NODE_CLASS_MAPPINGS, reporter=TerminalReporter())
    for node_id, out in record.items():
        if out["ui"]:
            print(f"node {node_id}: {out['ui']}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return exit_code(run, build_parser().parse_args(argv))
