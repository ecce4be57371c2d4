"""ComfyUI entry point of the video super-resolution node pack.

ComfyUI imports this folder as a package and reads the two mappings. The
library, vsr_core, is imported by its own name, so this folder goes on
sys.path (appended: ComfyUI's own modules keep precedence).
"""
import os
import sys

_here = os.path.dirname(os.path.abspath(__file__))
if _here not in sys.path:
    sys.path.append(_here)

from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS  # noqa: E402

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
