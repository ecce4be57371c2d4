"""Headless execution and checking of ComfyUI workflows made with this pack's nodes: ComfyUI's workflow
file formats (API and UI), their validation, and an executor that is handed the node classes.

It lives with the nodes, not in vsr_core: it knows ComfyUI, the library does not. It imports only vsr_core's
front door (vsr_core.api: errors, progress, number checks) and the standard library, never ComfyUI, so
`python -m nodes` runs without it."""
from .executor import apply_overrides, load_workflow, run_prompt
from .signature import node_info
from .ui_export import api_to_ui
from .ui_format import ui_to_api
from .validate import validate_prompt, validate_ui

__all__ = ["apply_overrides", "load_workflow", "run_prompt", "node_info", "api_to_ui",
           "ui_to_api", "validate_prompt", "validate_ui"]
