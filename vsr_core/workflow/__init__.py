"""Headless execution of ComfyUI workflows made of this pack's nodes."""
from .executor import apply_overrides, load_workflow, run_prompt
from .pack import load_node_pack
from .ui_format import ui_to_api

__all__ = ["apply_overrides", "load_workflow", "run_prompt", "load_node_pack", "ui_to_api"]
