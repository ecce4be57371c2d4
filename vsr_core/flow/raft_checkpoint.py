"""Read RAFT-large checkpoints in either real layout (methods.md section 5).

* princeton-vl ``raft-things.pth`` (and the other princeton-vl files): saved
  from ``nn.DataParallel``, so every key starts with ``module.``; the context
  encoder's downsampling BatchNorm is saved twice, as ``layerK.0.norm3`` and
  ``layerK.0.downsample.1`` (one module, two names).
* torchvision ``raft_large`` (``Raft_Large_Weights.*``): the key names of
  ``vsr_core.flow.raft.RAFT``, our canonical layout.

MGLD-VSR checkpoints keep RAFT under ``flownet_model.``; any such prefix
(``module.``, ``flownet_model.``, ``flownet_model.module.``...) is found from
the anchor key and stripped. Only ``torch.load(weights_only=True)`` or
safetensors is used: no pickled code ever runs.
"""
from __future__ import annotations

import os
import re
from typing import Mapping

import torch

from ..errors import CheckpointError, InputError
from .raft import RAFT

PRINCETON = "princeton-vl"
TORCHVISION = "torchvision"

_BN_SUFFIXES = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
# Keys a checkpoint may omit (older PyTorch did not save the BatchNorm counter).
_OPTIONAL_SUFFIX = ".num_batches_tracked"

_ANCHORS = {PRINCETON: "fnet.conv1.weight", TORCHVISION: "feature_encoder.convnormrelu.0.weight"}
# RAFT-small anchors, to give a precise error instead of a key dump.
_SMALL_ANCHORS = ("fnet.layer1.0.conv3.weight", "feature_encoder.layer1.0.convnormrelu3.0.weight")


def _princeton_to_canonical(key: str) -> str | None:
    """Rename one princeton-vl key (prefix already stripped). ``None`` for a
    key that has no canonical counterpart (the duplicate ``norm3``)."""
    m = re.fullmatch(r"(fnet|cnet)\.(.+)", key)
    if m:
        enc = "feature_encoder" if m.group(1) == "fnet" else "context_encoder"
        rest = m.group(2)
        rules = [
            (r"conv1\.(\w+)", r"convnormrelu.0.\1"),
            (r"norm1\.(\w+)", r"convnormrelu.1.\1"),
            (r"conv2\.(\w+)", r"conv.\1"),
            (r"(layer\d\.\d)\.conv([12])\.(\w+)", r"\1.convnormrelu\2.0.\3"),
            (r"(layer\d\.\d)\.norm([12])\.(\w+)", r"\1.convnormrelu\2.1.\3"),
            (r"(layer\d\.\d)\.norm3\.(\w+)", None),
            (r"(layer\d\.\d\.downsample\.[01]\.\w+)", r"\1"),
        ]
        for pattern, repl in rules:
            if re.fullmatch(pattern, rest):
                return None if repl is None else f"{enc}." + re.sub(pattern, repl, rest)
        return f"{enc}.{rest}"  # unknown: passes through and is reported as unexpected
    rules = [
        (r"update_block\.encoder\.convc([12])\.(\w+)", r"update_block.motion_encoder.convcorr\1.0.\2"),
        (r"update_block\.encoder\.convf([12])\.(\w+)", r"update_block.motion_encoder.convflow\1.0.\2"),
        (r"update_block\.encoder\.conv\.(\w+)", r"update_block.motion_encoder.conv.0.\1"),
        (r"update_block\.gru\.conv([zrq])([12])\.(\w+)", r"update_block.recurrent_block.convgru\2.conv\1.\3"),
        (r"update_block\.mask\.0\.(\w+)", r"mask_predictor.convrelu.0.\1"),
        (r"update_block\.mask\.2\.(\w+)", r"mask_predictor.conv.\1"),
    ]
    for pattern, repl in rules:
        if re.fullmatch(pattern, key):
            return re.sub(pattern, repl, key)
    return key  # update_block.flow_head.* keeps its name


def _canonical_to_princeton(key: str) -> list[str]:
    """Inverse of ``_princeton_to_canonical`` (both names for the shared BN)."""
    m = re.fullmatch(r"(feature_encoder|context_encoder)\.(.+)", key)
    if m:
        enc = "fnet" if m.group(1) == "feature_encoder" else "cnet"
        rest = m.group(2)
        rules = [
            (r"convnormrelu\.0\.(\w+)", r"conv1.\1"),
            (r"convnormrelu\.1\.(\w+)", r"norm1.\1"),
            (r"conv\.(\w+)", r"conv2.\1"),
            (r"(layer\d\.\d)\.convnormrelu([12])\.0\.(\w+)", r"\1.conv\2.\3"),
            (r"(layer\d\.\d)\.convnormrelu([12])\.1\.(\w+)", r"\1.norm\2.\3"),
        ]
        for pattern, repl in rules:
            if re.fullmatch(pattern, rest):
                return [f"{enc}." + re.sub(pattern, repl, rest)]
        d = re.fullmatch(r"(layer\d\.\d)\.downsample\.1\.(\w+)", rest)
        if d:  # the BatchNorm saved under both names
            return [f"{enc}.{d.group(1)}.norm3.{d.group(2)}", f"{enc}.{rest}"]
        return [f"{enc}.{rest}"]
    rules = [
        (r"update_block\.motion_encoder\.convcorr([12])\.0\.(\w+)", r"update_block.encoder.convc\1.\2"),
        (r"update_block\.motion_encoder\.convflow([12])\.0\.(\w+)", r"update_block.encoder.convf\1.\2"),
        (r"update_block\.motion_encoder\.conv\.0\.(\w+)", r"update_block.encoder.conv.\1"),
        (r"update_block\.recurrent_block\.convgru([12])\.conv([zrq])\.(\w+)", r"update_block.gru.conv\2\1.\3"),
        (r"mask_predictor\.convrelu\.0\.(\w+)", r"update_block.mask.0.\1"),
        (r"mask_predictor\.conv\.(\w+)", r"update_block.mask.2.\1"),
    ]
    for pattern, repl in rules:
        if re.fullmatch(pattern, key):
            return [re.sub(pattern, repl, key)]
    return [key]


def canonical_shapes() -> dict[str, tuple[int, ...]]:
    """Key -> shape of the canonical (torchvision) layout, from our module."""
    return {k: tuple(v.shape) for k, v in RAFT().state_dict().items()}


def to_princeton_layout(state_dict: Mapping[str, torch.Tensor], prefix: str = "module.") -> dict:
    """Canonical (torchvision) state dict -> princeton-vl layout, as saved in
    ``raft-things.pth`` (``module.`` prefix, shared BatchNorm under two names)."""
    out = {}
    for key, value in state_dict.items():
        for name in _canonical_to_princeton(key):
            out[prefix + name] = value
    return out


def _unwrap(obj, source: str) -> dict:
    """The state dict inside a loaded checkpoint object."""
    if isinstance(obj, Mapping):
        for wrapper in ("state_dict", "model", "model_state_dict", "params"):
            inner = obj.get(wrapper)
            if isinstance(inner, Mapping) and inner and all(isinstance(k, str) for k in inner):
                obj = inner
                break
        tensors = {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
        if tensors:
            return tensors
    raise CheckpointError(f"RAFT checkpoint {source}: holds no tensors (expected a state dict of "
                          f"a princeton-vl raft-things.pth or a torchvision raft_large file)")


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Tensors of a .pth/.pt/.ckpt (``torch.load(weights_only=True)``) or
    .safetensors file."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise InputError(f"RAFT weights: no file at {path!r} (expected a raft-things.pth or "
                         f"torchvision raft_large .pth/.safetensors file)")
    try:
        if path.lower().endswith(".safetensors"):
            from safetensors.torch import load_file
            obj = load_file(path, device="cpu")
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # unpicklable, truncated, not a checkpoint at all
        raise CheckpointError(f"RAFT checkpoint {path!r}: cannot be read as a PyTorch/safetensors "
                              f"state dict ({type(err).__name__}: {str(err).splitlines()[0][:200]})") from err
    return _unwrap(obj, repr(path))


def _list(keys, limit: int = 12) -> str:
    keys = sorted(keys)
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")


def detect_layout(state_dict: Mapping[str, torch.Tensor]) -> tuple[str, str]:
    """(layout, prefix) of a RAFT-large state dict, or CheckpointError."""
    for layout, anchor in _ANCHORS.items():
        hits = [k[: -len(anchor)] for k in state_dict if k.endswith(anchor)
                and (len(k) == len(anchor) or k[-len(anchor) - 1] == ".")]
        if hits:
            return layout, min(hits, key=len)
    for anchor in _SMALL_ANCHORS:
        if any(k.endswith(anchor) for k in state_dict):
            raise CheckpointError("RAFT checkpoint: this is RAFT-small (raft-small.pth / raft_small); "
                                  "only RAFT-large (raft-things.pth, raft_large) is supported")
    expected = canonical_shapes()
    raise CheckpointError(
        "RAFT checkpoint: not a RAFT-large state dict (neither princeton-vl 'module.fnet.conv1.weight' "
        "nor torchvision 'feature_encoder.convnormrelu.0.weight' found). "
        f"missing keys ({len(expected)}): {_list(expected)}; "
        f"unexpected keys ({len(state_dict)}): {_list(state_dict)}")


def to_canonical(state_dict: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], str]:
    """Rename a princeton-vl or torchvision RAFT-large state dict to our layout
    and check it key for key and shape for shape. Returns (state dict, layout)."""
    layout, prefix = detect_layout(state_dict)
    own = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
    out: dict[str, torch.Tensor] = {}
    origin: dict[str, str] = {}  # canonical key -> key as named in the file
    spare: dict[str, tuple[str, torch.Tensor]] = {}
    for key, value in own.items():
        new = _princeton_to_canonical(key) if layout == PRINCETON else key
        if new is None:
            # norm3 is the second name of downsample.1 (the one PyTorch loads
            # last, so the one that counts); used only if downsample.1 is absent.
            m = re.fullmatch(r"(fnet|cnet)\.(layer\d\.\d)\.norm3\.(\w+)", key)
            if m:
                enc = "feature_encoder" if m.group(1) == "fnet" else "context_encoder"
                spare[f"{enc}.{m.group(2)}.downsample.1.{m.group(3)}"] = (prefix + key, value)
            continue
        out[new] = value
        origin[new] = prefix + key
    for new, (name, value) in spare.items():
        if new not in out:
            out[new], origin[new] = value, name

    def file_name(canonical_key: str) -> str:  # a canonical key as this layout names it
        if layout == PRINCETON:
            return prefix + _canonical_to_princeton(canonical_key)[-1]
        return prefix + canonical_key

    expected = canonical_shapes()
    missing = [file_name(k) for k in expected if k not in out and not k.endswith(_OPTIONAL_SUFFIX)]
    unexpected = [origin[k] for k in out if k not in expected]
    wrong = [f"{origin[k]} {tuple(out[k].shape)} (expected {expected[k]})" for k in expected
             if k in out and tuple(out[k].shape) != expected[k]]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing keys ({len(missing)}): {_list(missing)}")
        if unexpected:
            parts.append(f"unexpected keys ({len(unexpected)}): {_list(unexpected)}")
        if wrong:
            parts.append(f"wrong shapes ({len(wrong)}): {_list(wrong, 6)}")
        raise CheckpointError(f"RAFT checkpoint ({layout} layout, key prefix {prefix!r}) does not "
                              f"match RAFT-large: " + "; ".join(parts))
    bad = [origin[k] for k, v in out.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(f"RAFT checkpoint: non-finite values (NaN/inf) in {_list(bad)}")
    return out, layout


def load_raft(source, device: str | torch.device = "cpu") -> RAFT:
    """A RAFT-large in eval mode with weights from a file path or a state dict
    (either layout). Raises InputError / CheckpointError with the reason."""
    state = read_state_dict(source) if isinstance(source, (str, os.PathLike)) else dict(source)
    canonical, layout = to_canonical(state)
    model = RAFT()
    model.load_state_dict(canonical, strict=False)  # strictness checked above (optional counters)
    model.layout = layout
    return model.to(device).eval()


def deterministic_weights(seed: int = 0) -> dict[str, torch.Tensor]:
    """Random but reproducible RAFT-large weights in the canonical layout.

    For tests and golden data only (meaningless as a flow estimator). Uses
    numpy's legacy ``RandomState``, whose stream is frozen across versions,
    and visits keys in sorted order: conv weights N(0, 1/fan_in), biases
    N(0, 0.05^2), BatchNorm weight 1 + N(0, 0.1^2), bias and running mean
    N(0, 0.1^2), running var U(0.5, 1.5).
    """
    import numpy as np

    rng = np.random.RandomState(seed)
    shapes = canonical_shapes()
    bn_modules = {k.rsplit(".", 1)[0] for k in shapes if k.endswith(".running_mean")}
    out = {}
    for key in sorted(shapes):
        shape = shapes[key]
        module, leaf = key.rsplit(".", 1)
        if leaf == "num_batches_tracked":
            out[key] = torch.tensor(0, dtype=torch.long)
            continue
        if module in bn_modules:
            if leaf == "weight":
                arr = 1.0 + 0.1 * rng.standard_normal(shape)
            elif leaf == "running_var":
                arr = rng.uniform(0.5, 1.5, shape)
            else:
                arr = 0.1 * rng.standard_normal(shape)
        elif leaf == "weight":
            fan_in = int(np.prod(shape[1:]))
            arr = rng.standard_normal(shape) / np.sqrt(fan_in)
        else:
            arr = 0.05 * rng.standard_normal(shape)
        out[key] = torch.from_numpy(np.asarray(arr, dtype=np.float32))
    return out
