"""vsr_core: temporally consistent diffusion video super-resolution.

A standalone PyTorch library; the ComfyUI nodes in ../nodes are thin adapters
over it. Nothing here imports ComfyUI.
"""
__version__ = "0.1.0"
