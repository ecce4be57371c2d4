"""ComfyUI nodes: thin adapters over vsr_core, grouped by stage (nodes_<stage>.py)."""
from . import nodes_diffusion, nodes_flow, nodes_models, nodes_relay, nodes_streaming, nodes_upscale, nodes_video
from .input_guard import guard_number_inputs

NODE_CLASS_MAPPINGS = {}
NODE_DISPLAY_NAME_MAPPINGS = {}
for _module in (nodes_video, nodes_flow, nodes_upscale, nodes_relay, nodes_streaming, nodes_models, nodes_diffusion):
    NODE_CLASS_MAPPINGS.update(_module.NODE_CLASS_MAPPINGS)
    NODE_DISPLAY_NAME_MAPPINGS.update(_module.NODE_DISPLAY_NAME_MAPPINGS)
for _cls in NODE_CLASS_MAPPINGS.values():
    guard_number_inputs(_cls)
