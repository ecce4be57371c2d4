"""A small learned correction of the propagation's flow (DIS on compressed input).

DIS matches codec blocks and ringing as if they were texture, so on h264 input its flow is off where the
clean frames' flow is not; with the flow of the clean LR frames (an oracle) the shipped upscaler gains
about 0.05 dB more on h264 (``benchmarks/bench_flow_source.py``). This network sees one frame, the
neighbour warped onto it by the estimated flow and the flow itself, and adds a residual to the flow:
BasicVSR's end-to-end flow fine-tuning, reduced to a few LR-resolution convolutions. It starts as the
identity (zero last layer), so adding it to trained weights changes nothing until it is trained.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..flow.warp import grid_warp, sampling_grid

FLOW_INPUT_SCALE = 0.25   # LR flows are a few pixels; keep the input near unit range


class FlowRefiner(nn.Module):
    """``refine(frames, neighbours, flow)`` ([N,3,H,W], [N,3,H,W], [N,2,H,W]) -> corrected flow [N,2,H,W]."""

    def __init__(self, channels: int, layers: int = 4):
        super().__init__()
        self.head = nn.Conv2d(2 + 3 + 3, channels, 3, 1, 1)
        self.body = nn.ModuleList([nn.Conv2d(channels, channels, 3, 1, 1) for _ in range(layers)])
        self.tail = nn.Conv2d(channels, 2, 3, 1, 1)
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)

    def forward(self, frames: torch.Tensor, neighbours: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        warped = grid_warp(neighbours, sampling_grid(flow))
        x = F.leaky_relu(self.head(torch.cat([flow * FLOW_INPUT_SCALE, frames, warped], 1)), 0.1)
        for conv in self.body:
            x = F.leaky_relu(conv(x), 0.1)
        return flow + self.tail(x)

    def refine_clip(self, lr: torch.Tensor, flow_forward: torch.Tensor,
                    flow_backward: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Both directions of a batch of clips at once: ``lr`` [B,T,3,H,W], flows [B,T-1,2,H,W]."""
        b, n = flow_forward.shape[:2]
        frames = torch.cat([lr[:, :-1], lr[:, 1:]], 1).flatten(0, 1)
        neighbours = torch.cat([lr[:, 1:], lr[:, :-1]], 1).flatten(0, 1)
        flows = torch.cat([flow_forward, flow_backward], 1).flatten(0, 1)
        out = self(frames.to(flows.dtype), neighbours.to(flows.dtype), flows).reshape(b, 2 * n, *flows.shape[1:])
        return out[:, :n], out[:, n:]
