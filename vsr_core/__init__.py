"""vsr_core: temporally consistent diffusion video super-resolution.

A standalone PyTorch library; the ComfyUI nodes in ../nodes are thin adapters
over it. Nothing here imports ComfyUI.
"""
__version__ = "0.1.0"

__all__ = ["__version__", "load_model"]


def __getattr__(name):
    # Lazy, so `import vsr_core` (and the command line) stays cheap.
    if name == "load_model":
        from .checkpoints import load_model
        return load_model
    raise AttributeError(f"module 'vsr_core' has no attribute {name!r}")
