"""The upscaler's precision probe: what vsr_core.cpu_precision times to pick "auto" on a CPU."""
from __future__ import annotations

import copy

import torch

from ..speed import autocast, cpu_auto_precision, use_channels_last

# 3 frames of 64x128: large enough that convolutions dominate as in a real window, small enough that
# one warm-up and three rounds of both precisions take about a second on a 2-core machine
PROBE_SHAPE = (3, 64, 128)


@torch.inference_mode()
def choose_cpu_precision(model) -> str:
    """'bf16' or 'fp32' for "auto" on this CPU, timing ``model`` (a VideoUpscaler) on first use (cached)."""
    t, h, w = PROBE_SHAPE
    g = torch.Generator().manual_seed(0)
    lr = torch.rand(1, t, 3, h, w, generator=g)
    flow = torch.randn(1, t - 1, 2, h, w, generator=g)
    variants = {}

    def run(precision: str) -> None:
        if precision not in variants:     # bf16 runs channels-last, as the pipeline runs it
            variants[precision] = use_channels_last(copy.deepcopy(model)) if precision == "bf16" else model
        with autocast(torch.device("cpu"), precision):
            variants[precision](lr, flow, flow)
    return cpu_auto_precision(run)
