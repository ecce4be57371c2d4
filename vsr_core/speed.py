"""Speed settings for the command line and the benchmarks: device, precision, memory format, compile.

- precision "auto" runs float16 autocast on CUDA (bfloat16 where the GPU has
  it: no overflow in the VAE); on a CPU with bfloat16 instructions (AMX or
  AVX512-BF16) bfloat16 where a measurement said it is faster
  (vsr_core.cpu_precision: timed once per CPU model, cached; VSR_PRECISION
  overrides), and float32 on other CPUs, where half precision is emulated and
  slower; weights stay float32, autocast casts per operation.
- channels_last stores the 2-D convolution weights NHWC, which oneDNN
  (CPU) and cuDNN run faster for these convolution-heavy VAEs.
- compile runs a module through torch.compile (optional: the first call
  compiles for a minute or more, and it needs a C++ compiler on the CPU).
Attention everywhere goes through scaled_dot_product_attention with
contiguous inputs, so the fused (flash / memory-efficient) kernels run.
"""
from __future__ import annotations

import contextlib
import functools

import torch

from . import cpu_precision
from .errors import InputError

PRECISIONS = ("auto", "fp32", "fp16", "bf16")
DEVICES = ("auto", "cpu", "cuda", "mps")


def pick_device(name: str = "auto") -> torch.device:
    if name not in DEVICES:
        raise InputError(f"device={name!r}; expected one of {', '.join(DEVICES)}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("device 'cuda' was asked for but this PyTorch sees no CUDA GPU; use --device cpu")
    if name == "mps" and not torch.backends.mps.is_available():
        raise InputError("device 'mps' was asked for but this machine has no usable Apple GPU; use --device cpu")
    return torch.device(name)


@functools.lru_cache(maxsize=1)
def cpu_has_fast_bf16() -> bool:
    """Native bfloat16 matrix instructions (Intel AMX or AVX512-BF16), read from /proc/cpuinfo (Linux)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"amx_bf16", "avx512_bf16"})
    except OSError:
        pass
    return False


def cpu_auto_precision(run=None) -> str:
    """'bf16' or 'fp32' for precision "auto" on this CPU (see vsr_core.cpu_precision). ``run(precision)``
    runs a small piece of the actual network: given, and with nothing cached yet, it is timed both ways."""
    return cpu_precision.resolve(run, cpu_has_fast_bf16())


def autocast_dtype(device: torch.device, precision: str = "auto") -> torch.dtype | None:
    """The autocast dtype for `precision` on `device` (None: run in float32)."""
    if precision not in PRECISIONS:
        raise InputError(f"precision={precision!r}; expected one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        if device.type == "cpu":
            return torch.bfloat16 if cpu_auto_precision() == "bf16" else None
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]


def autocast(device: torch.device, precision: str = "auto"):
    """A context running eligible operations (convolutions, matmuls, attention) in the reduced precision."""
    dtype = autocast_dtype(device, precision)
    return contextlib.nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)


def use_channels_last(module: torch.nn.Module) -> torch.nn.Module:
    """Store the module's 4-D (conv2d) weights channels-last, in place; other weights are untouched."""
    for p in module.parameters():
        if p.dim() == 4:
            p.data = p.data.contiguous(memory_format=torch.channels_last)
    return module


def compile_forward(module: torch.nn.Module) -> torch.nn.Module:
    """torch.compile the module in place (nn.Module.compile: the module, its parameters and attributes stay).

    Shapes are specialised (no dynamic=True): with dynamic shapes dynamo kept recompiling the
    UNet's blocks past its recompile limit and fell back, 3x slower than eager on the CPU.
    """
    module.compile()
    return module
