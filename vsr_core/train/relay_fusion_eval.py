"""Validation of the relay's learned fusion on cached samples: against the hand-designed mix it starts
from, by sample kind (ground-truth or generated keyframes)."""
from __future__ import annotations

import numpy as np
import torch

from ..metrics import psnr_y
from ..relay.transfer import high_pass
from .relay_fusion_data import split_inputs


def _energy(x: torch.Tensor, scale: int) -> float:
    return float(high_pass(x.float(), scale).pow(2).mean())


@torch.no_grad()
def evaluate_fusion(model, samples: list[dict], scale: int = 4, prefix: str = "val") -> dict:
    """{prefix/kind/psnr_y_fused, .../psnr_y_hand, .../hf_fused, .../hf_hand}: PSNR-Y to the target and the
    relayed frames' high-frequency energy as a share of the target's, per kind of sample."""
    was = model.training
    model.eval()
    rows: dict[str, dict[str, list]] = {}
    for sample in samples:
        inputs = split_inputs(sample["inputs"])
        target = sample["target"].float()
        hand = (inputs["faithful"] + inputs["mix"]).clamp(0, 1)
        fused = (inputs["faithful"] + model(**inputs, nearness=sample["nearness"])).clamp(0, 1)
        row = rows.setdefault(sample["kind"], {k: [] for k in ("pf", "ph", "ef", "eh", "et")})
        row["pf"].append(psnr_y(fused, target))
        row["ph"].append(psnr_y(hand, target))
        for key, x in (("ef", fused), ("eh", hand), ("et", target)):
            row[key].append(_energy(x, scale))
    model.train(was)
    out = {}
    for kind, row in sorted(rows.items()):
        out[f"{prefix}/{kind}/psnr_y_fused"] = round(float(np.mean(row["pf"])), 3)
        out[f"{prefix}/{kind}/psnr_y_hand"] = round(float(np.mean(row["ph"])), 3)
        out[f"{prefix}/{kind}/hf_fused"] = round(float(np.mean(row["ef"]) / np.mean(row["et"])), 3)
        out[f"{prefix}/{kind}/hf_hand"] = round(float(np.mean(row["eh"]) / np.mean(row["et"])), 3)
    return out
