"""Anti-aliased downsampling (BlurPool, Zhang 2019) and the matching low-pass filter.

VideoGigaGAN replaces every strided convolution with a stride-1 convolution
followed by BlurPool (low-pass, then subsample) so that small sub-pixel shifts
of the input do not alias into large changes of the features: one of the
three changes that make its one-pass upscaler temporally stable
(methods.md section 4).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

_BINOMIAL = {3: (1.0, 2.0, 1.0), 5: (1.0, 4.0, 6.0, 4.0, 1.0)}


def binomial_kernel(size: int = 3) -> torch.Tensor:
    """Normalised separable binomial [size,size] kernel ([1,2,1] x [1,2,1] / 16 for size 3)."""
    if size not in _BINOMIAL:
        raise ValueError(f"binomial kernel size {size}; expected one of {sorted(_BINOMIAL)}")
    k = torch.tensor(_BINOMIAL[size])
    k2 = torch.outer(k, k)
    return k2 / k2.sum()


def replicate_pad(x: torch.Tensor, p: int) -> torch.Tensor:
    """Pad [N,C,H,W] by ``p`` replicated border pixels, in x's own dtype.

    Autocast runs replication padding in float32 (a cast, a float32 pad and a
    cast back for the next convolution: 4x the time of the pad itself here);
    copying values is exact in any dtype, so autocast is off for it."""
    with torch.autocast(x.device.type, enabled=False):
        return F.pad(x, (p, p, p, p), mode="replicate")


def low_pass(x: torch.Tensor, size: int = 3) -> torch.Tensor:
    """Per-channel binomial blur of [N,C,H,W] with replicate padding (same size out)."""
    c = x.shape[1]
    k = binomial_kernel(size).to(x)[None, None].expand(c, 1, size, size)
    return F.conv2d(replicate_pad(x, size // 2), k, groups=c)


class BlurPool(nn.Module):
    """Low-pass with a fixed binomial kernel, then keep every `stride`-th pixel."""

    def __init__(self, channels: int, stride: int = 2, size: int = 3):
        super().__init__()
        self.channels, self.stride, self.size = channels, stride, size
        self.register_buffer("kernel", binomial_kernel(size)[None, None].repeat(channels, 1, 1, 1),
                             persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(replicate_pad(x, self.size // 2), self.kernel.to(x.dtype), stride=self.stride,
                        groups=self.channels)


def downsample(channels_in: int, channels_out: int, blurpool: bool) -> nn.Module:
    """x2 downsampling conv: stride-2 conv, or (blurpool) stride-1 conv + BlurPool."""
    if blurpool:
        return nn.Sequential(nn.Conv2d(channels_in, channels_out, 3, 1, 1), BlurPool(channels_out))
    return nn.Conv2d(channels_in, channels_out, 3, 2, 1)
