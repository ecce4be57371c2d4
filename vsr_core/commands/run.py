"""`python -m vsr_core run WORKFLOW.json`: run a ComfyUI workflow without ComfyUI."""
from __future__ import annotations

import os

from ..progress import TerminalReporter
from ..workflow import apply_overrides, load_node_pack, load_workflow, run_prompt
from ..workflow.pack import DEFAULT_PACK


def register(subparsers) -> None:
    p = subparsers.add_parser("run", help="run a workflow JSON (API or UI format) with this pack's nodes",
                              description="Execute a ComfyUI workflow made of this pack's nodes, in "
                                          "dependency order, with the same node classes ComfyUI loads.")
    p.add_argument("workflow")
    p.add_argument("--set", dest="settings", action="append", default=[], metavar="NODE.INPUT=VALUE",
                   help="override an input, e.g. --set 1.video=clip.mp4 (NODE: id, title or class)")
    p.add_argument("--output-dir", default=None,
                   help="where Save nodes write (default: ./output); also VSR_OUTPUT_DIR")
    p.add_argument("--pack", default=DEFAULT_PACK, help="node pack folder (default: the one vsr_core ships in)")
    p.set_defaults(func=run)


def run(args) -> int:
    if args.output_dir:
        os.environ["VSR_OUTPUT_DIR"] = os.path.abspath(args.output_dir)
    classes = load_node_pack(args.pack)
    prompt = load_workflow(args.workflow, classes)
    apply_overrides(prompt, args.settings, classes)
    record = run_prompt(prompt, classes, reporter=TerminalReporter())
    for node_id, out in record.items():
        if out["ui"]:
            print(f"node {node_id}: {out['ui']}")
    return 0
