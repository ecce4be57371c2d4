"""Flow estimators with one calling convention, and a factory for them.

An estimator is a callable ``est(image1, image2) -> flow`` with image1,
image2 [N,3,H,W] float RGB in 0..1 and flow [N,2,H,W] float32 in pixels from
image1 to image2. It has ``.name`` (provenance stored in FlowField.method)
and ``.device``.
"""
from __future__ import annotations

import os
import threading

import torch

from ..errors import InputError
from .dis import DEFAULT_PRESET, PRESETS, DISFlow
from .raft import MIN_SIDE as RAFT_MIN_SIDE, RAFT
from .raft_checkpoint import load_raft

METHODS = ("dis", "raft")
# What RaftFlow accepts: frames in 0..1 either normalised to [-1,1] as both
# reference implementations do ("unit"), or fed raw as MGLD-VSR's RAFT_SR does.
RAFT_INPUT_MODES = ("unit", "mgld_raw")


class RaftFlow:
    """RAFT-large as an estimator.

    ``iters``: refinement steps (12 = princeton-vl/torchvision default; MGLD
    uses 10). ``input_range``: "unit" (default; frames 0..1 are mapped to
    [-1,1], which gives exactly the references' numbers for real weights) or
    "mgld_raw" (frames fed as 0..1, MGLD-VSR's RAFT_SR quirk). ``batch_size``
    pairs are run at once (memory grows with it: about 220 MB per pair at
    854x480 for the correlation pyramid alone).
    """

    def __init__(self, model: RAFT, iters: int = 12, input_range: str = "unit",
                 device: str | torch.device | None = None, batch_size: int = 2, name: str = "raft"):
        if not isinstance(iters, int) or not 1 <= iters <= 64:
            raise InputError(f"RAFT iters: expected an integer in 1..64, got {iters!r}")
        if input_range not in RAFT_INPUT_MODES:
            raise InputError(f"RAFT input_range: expected one of {RAFT_INPUT_MODES}, got {input_range!r}")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise InputError(f"RAFT batch_size: expected a positive integer, got {batch_size!r}")
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        self.model = model.to(self.device).eval()
        self.iters, self.input_range, self.batch_size = iters, input_range, batch_size
        self.name = f"{name}:iters={iters},input={input_range}"

    @classmethod
    def from_file(cls, path: str | os.PathLike, **kwargs) -> "RaftFlow":
        """Load a raft-things.pth / torchvision raft_large file (cached)."""
        device = kwargs.get("device") or "cpu"
        model = load_raft_cached(path, device)
        label = f"raft[{os.path.basename(os.fspath(path))},{model.layout}]"
        return cls(model, name=label, **kwargs)

    @torch.no_grad()
    def __call__(self, image1: torch.Tensor, image2: torch.Tensor) -> torch.Tensor:
        if image1.shape != image2.shape or image1.dim() != 4 or image1.shape[1] != 3:
            raise InputError(f"RAFT: image1 and image2 must both be [N,3,H,W] of one shape, got "
                             f"{tuple(image1.shape)} and {tuple(image2.shape)}")
        if min(image1.shape[-2:]) < RAFT_MIN_SIDE:
            raise InputError(f"frames: RAFT needs frames of at least {RAFT_MIN_SIDE}x{RAFT_MIN_SIDE} "
                             f"pixels, got {image1.shape[-2]}x{image1.shape[-1]}; use method 'dis' "
                             f"for smaller frames")
        out = []
        for s in range(0, image1.shape[0], self.batch_size):
            a = image1[s:s + self.batch_size].to(self.device, torch.float32)
            b = image2[s:s + self.batch_size].to(self.device, torch.float32)
            out.append(self.model(a, b, iters=self.iters, input_range=self.input_range).float())
        return torch.cat(out).to(image1.device)


_CACHE: dict = {}
_CACHE_LOCK = threading.Lock()


def load_raft_cached(path: str | os.PathLike, device: str | torch.device = "cpu") -> RAFT:
    """``load_raft`` with a small cache keyed on (path, size, mtime, device),
    so re-running a graph does not re-read the file. Keeps the last 2 models."""
    path = os.path.abspath(os.fspath(path))
    try:
        st = os.stat(path)
        key = (path, st.st_size, st.st_mtime_ns, str(device))
    except OSError:
        key = None  # load_raft reports the missing file
    with _CACHE_LOCK:
        if key is not None and key in _CACHE:
            return _CACHE[key]
    model = load_raft(path, device)
    if key is not None:
        with _CACHE_LOCK:
            while len(_CACHE) >= 2:
                _CACHE.pop(next(iter(_CACHE)))
            _CACHE[key] = model
    return model


def make_estimator(method: str = "dis", *, preset: str = DEFAULT_PRESET,
                   weights: str | os.PathLike | None = None, iters: int = 12,
                   input_range: str = "unit", device: str | torch.device = "cpu",
                   batch_size: int = 2):
    """An estimator by name: "dis" (no weights; ``preset`` in ultrafast/fast/
    medium) or "raft" (needs ``weights``, a file path; nothing is downloaded)."""
    if method == "dis":
        if preset not in PRESETS:
            raise InputError(f"preset: expected one of {sorted(PRESETS)}, got {preset!r}")
        return DISFlow(preset)
    if method == "raft":
        if weights is None or str(weights) == "":
            raise InputError("weights: method 'raft' needs a RAFT checkpoint file (princeton-vl "
                             "raft-things.pth or torchvision raft_large .pth/.safetensors); "
                             "nothing is downloaded. Use method 'dis' to run without weights.")
        return RaftFlow.from_file(weights, iters=iters, input_range=input_range, device=device,
                                  batch_size=batch_size)
    raise InputError(f"method: expected one of {METHODS}, got {method!r}")
