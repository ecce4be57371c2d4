"""Reading checkpoint files safely.

safetensors first. .ckpt/.pth/.pt/.bin only through torch.load with
weights_only=True (no pickled code ever runs) and mmap where the file allows
it, so a 5 GB ldm checkpoint is not read into memory twice. Training metadata
that Lightning pickles beside the weights (callbacks, hyper-parameters) is
replaced by inert placeholders; any other global is refused with a
CheckpointError naming it.
"""
from __future__ import annotations

import json
import os
import pickle
import zipfile

import torch

from ..errors import CheckpointError

__all__ = ["read_checkpoint", "write_safetensors", "SAFETENSORS_EXT", "PICKLE_EXT"]

SAFETENSORS_EXT = (".safetensors", ".sft")
PICKLE_EXT = (".ckpt", ".pth", ".pt", ".bin")
# Training metadata that Lightning/ldm checkpoints pickle next to the weights
# (callbacks, hyper-parameters, numpy scores). weights_only=True rejects these
# classes; we map them to inert placeholders instead (their own code never
# runs), which drops that metadata and keeps the tensors.
_METADATA_GLOBALS = ("pytorch_lightning.", "lightning.", "lightning_fabric.", "omegaconf.",
                     "argparse.Namespace", "pathlib.", "numpy.", "collections.", "typing.")
# Containers that training frameworks wrap the weights in (Lightning, BasicSR, misc).
_WRAPPERS = ("state_dict", "params_ema", "params", "model_state_dict", "model", "module")


def _unwrap(obj, path: str) -> dict:
    for _ in range(3):
        if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            return obj
        if isinstance(obj, dict):
            inner = next((obj[k] for k in _WRAPPERS if isinstance(obj.get(k), dict)), None)
            if inner is None:
                break
            obj = inner
    if isinstance(obj, dict):
        tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        if tensors:
            return tensors
    raise CheckpointError(
        f"checkpoint {path}: found no tensors (expected a state dict, or a dict holding one "
        f"under 'state_dict' / 'params_ema' / 'params'); top-level entries: "
        f"{list(obj)[:10] if isinstance(obj, dict) else type(obj).__name__}")


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read a checkpoint into (state dict on CPU, safetensors metadata or {})."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint {path}: no such file")
    if os.path.getsize(path) == 0:
        raise CheckpointError(f"checkpoint {path}: the file is empty")
    ext = os.path.splitext(path)[1].lower()
    if ext in SAFETENSORS_EXT:
        return _read_safetensors(path)
    if ext in PICKLE_EXT:
        return _read_torch(path), {}
    # Unknown extension: trust the content, not the name.
    with open(path, "rb") as f:
        head = f.read(8)
    if head[:2] == b"PK":
        return _read_torch(path), {}
    try:
        return _read_safetensors(path)
    except CheckpointError:
        raise CheckpointError(
            f"checkpoint {path}: unknown extension {ext!r}; expected .safetensors, or "
            f".ckpt/.pth/.pt/.bin (PyTorch zip format)") from None


def _read_safetensors(path: str):
    from safetensors import SafetensorError, safe_open
    try:
        sd = {}
        with safe_open(path, framework="pt", device="cpu") as f:
            meta = f.metadata() or {}
            for k in f.keys():
                sd[k] = f.get_tensor(k)
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(
            f"checkpoint {path}: not a readable safetensors file ({e}); the file may be "
            f"truncated (an interrupted download) or not a checkpoint") from None
    if not sd:
        raise CheckpointError(f"checkpoint {path}: the safetensors file holds no tensors")
    return sd, dict(meta)


class _Inert:
    """Stands in for a pickled metadata class; accepts and discards its state."""

    def __new__(cls, *args, **kwargs):
        return object.__new__(cls)

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        pass


def _torch_load(path: str):
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError as e:
        if "mmap" not in str(e).lower():
            raise
        # Legacy (non-zip) files cannot be memory-mapped.
        return torch.load(path, map_location="cpu", weights_only=True)


def _read_torch(path: str) -> dict:
    try:
        try:
            obj = _torch_load(path)
        except pickle.UnpicklingError as first:
            try:
                names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
            except Exception:
                names = []
            bad = [n for n in names if not n.startswith(_METADATA_GLOBALS)]
            if bad or not names:
                detail = f"it needs {bad}" if bad else str(first).splitlines()[0]
                raise CheckpointError(
                    f"checkpoint {path}: refusing to load it, because unpickling it would run "
                    f"code or build objects other than tensors ({detail}). Only "
                    f"torch.load(weights_only=True) is used; convert the file to .safetensors "
                    f"in a trusted environment.") from None
            stubs = [(type(n.rsplit(".", 1)[-1], (_Inert,), {}), n) for n in names]
            with torch.serialization.safe_globals(stubs):
                obj = _torch_load(path)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"checkpoint {path}: refusing to load it, because unpickling it would run code "
            f"or build objects other than tensors ({str(e).splitlines()[0]}). Convert it to "
            f".safetensors in a trusted environment.") from None
    except (zipfile.BadZipFile, EOFError, RuntimeError, OSError, ValueError, KeyError, IndexError, TypeError,
            AttributeError, MemoryError) as e:      # what the legacy unpickler raises on text or random bytes
        raise CheckpointError(
            f"checkpoint {path}: cannot be read as a PyTorch checkpoint ({type(e).__name__}: "
            f"{(str(e).splitlines() or [''])[0]}); "
            f"the file may be truncated or corrupted") from None
    return _unwrap(obj, path)


def write_safetensors(sd: dict[str, torch.Tensor], path: str | os.PathLike,
                      metadata: dict | None = None) -> None:
    """Write atomically: a temporary file renamed over the target at the end."""
    from safetensors.torch import save_file
    path = os.fspath(path)
    meta = {k: (v if isinstance(v, str) else json.dumps(v)) for k, v in (metadata or {}).items()}
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        save_file({k: v.detach().contiguous() for k, v in sd.items()}, tmp, metadata=meta)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
