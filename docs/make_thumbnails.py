"""Thumbnails for ComfyUI's template browser, made from real outputs: workflows/NAME.jpg beside NAME.json.

    python docs/make_thumbnails.py --url http://127.0.0.1:8188 --comfy-dir /path/to/ComfyUI [--only NAME ...]

Needs a running ComfyUI with this pack installed. A short clip (a virtual camera over a scikit-image
photo) is written to ComfyUI's input folder; every workflow that runs on the pack's shipped weights is
queued with it through ComfyUI's /prompt (its API twin in workflows/api/), and its saved or previewed
output becomes the thumbnail: the input, enlarged with nearest neighbour, beside the output. Workflows
that need the user's own checkpoints (MGLD-VSR/StableSR, an SD checkpoint) cannot run here: theirs show
the same graph run on the shipped weights, and say so on the image. relay_detail runs core Upscale Image
(using Model) on RealESRGAN_x4plus.pth from ComfyUI's models/upscale_models (Real-ESRGAN's release file;
the pack's converted vsr_core/weights/detail_realesrgan_x4plus.safetensors, saved as a plain state dict
under that name, loads there too).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.request

import cv2
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from vsr_core.data import CameraPath, photo, virtual_camera_clip  # noqa: E402
from vsr_core.video import VideoWriter, open_video  # noqa: E402

CLIP = "vsr_thumbnail_clip.mp4"
SIZE = (600, 340)
# workflows needing user weights -> the runnable workflow whose output stands in for theirs
STAND_INS = {"full_pipeline_mgld_stablesr": "full_pipeline_default", "mix_core_nodes": "full_pipeline_default"}


def post(url: str, path: str, body: dict) -> dict:
    req = urllib.request.Request(url + path, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(req) as r:
        return json.load(r)


def run(url: str, prompt: dict, timeout: float = 1800) -> dict:
    """Queue a prompt; its outputs once it has finished (raises if it failed)."""
    prompt_id = post(url, "/prompt", {"prompt": prompt})["prompt_id"]
    t0 = time.time()
    while time.time() - t0 < timeout:
        time.sleep(2)
        with urllib.request.urlopen(f"{url}/history/{prompt_id}") as r:
            entry = json.load(r).get(prompt_id)
        if entry and entry.get("status", {}).get("completed"):
            return entry["outputs"]
        if entry and entry.get("status", {}).get("status_str") == "error":
            raise RuntimeError(f"prompt failed: {entry['status']}")
    raise TimeoutError("prompt did not finish")


def output_frame(outputs: dict, comfy_dir: str) -> np.ndarray:
    """The middle frame of the first saved or previewed file (RGB uint8)."""
    for out in outputs.values():
        for item in out.get("images", []) + out.get("videos", []):
            path = os.path.join(comfy_dir, item.get("type", "output"), item.get("subfolder", ""), item["filename"])
            if path.lower().endswith((".png", ".jpg", ".webp")) and not os.path.isdir(path):
                return cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB)
            frames = open_video(path).read_all()
            return frames[len(frames) // 2]
    raise RuntimeError(f"no saved or previewed output in {list(outputs)}")


def compose(lr: np.ndarray, out: np.ndarray, title: str, caption: str) -> np.ndarray:
    w, h = SIZE
    canvas = np.full((h, w, 3), 24, np.uint8)
    half = (w - 30) // 2
    for i, img in enumerate((lr, out)):
        scale = min(half / img.shape[1], (h - 80) / img.shape[0])
        interp = cv2.INTER_NEAREST if i == 0 else cv2.INTER_AREA
        tile = cv2.resize(img, (int(img.shape[1] * scale), int(img.shape[0] * scale)), interpolation=interp)
        x, y = 10 + i * (half + 10), 50
        canvas[y:y + tile.shape[0], x:x + tile.shape[1]] = tile
    cv2.putText(canvas, title, (10, 32), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (235, 235, 235), 2, cv2.LINE_AA)
    cv2.putText(canvas, caption, (10, h - 12), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (200, 200, 200), 1, cv2.LINE_AA)
    return canvas


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", default="http://127.0.0.1:8188")
    ap.add_argument("--comfy-dir", required=True, help="ComfyUI's folder (its input/, output/ and temp/)")
    ap.add_argument("--only", nargs="+", metavar="NAME", help="make these thumbnails only (workflow names "
                    "without .json; default: all)")
    args = ap.parse_args()
    frames = {}
    names = sorted(f[:-5] for f in os.listdir(os.path.join(ROOT, "workflows", "api")) if f.endswith(".json"))
    unknown = sorted(set(args.only or ()) - set(names))
    if unknown:
        ap.error(f"--only {' '.join(unknown)}: no such workflow; expected some of {', '.join(names)}")
    names = sorted(args.only) if args.only else names
    clip = virtual_camera_clip(photo("astronaut"), 8, (72, 128), CameraPath(pan=(1.5, 0.4)))
    # the script's own clip, rewritten on every run
    with VideoWriter(os.path.join(args.comfy_dir, "input", CLIP), 24, crf=12, overwrite=True) as w:
        w.write(clip)
    for name in sorted({STAND_INS.get(n, n) for n in names}):
        with open(os.path.join(ROOT, "workflows", "api", name + ".json")) as f:
            prompt = json.load(f)
        for node in prompt.values():
            if node["class_type"] in ("VSR_LoadVideo", "LoadVideo"):
                node["inputs"]["video" if node["class_type"] == "VSR_LoadVideo" else "file"] = CLIP
        t0 = time.time()
        frames[name] = output_frame(run(args.url, prompt), args.comfy_dir)
        print(f"{name}: output {frames[name].shape[1]}x{frames[name].shape[0]} in {time.time() - t0:.0f} s")
    for name in names:
        source = STAND_INS.get(name, name)
        caption = (f"input (left) and this workflow's output, {clip.shape[2]}x{clip.shape[1]} clip"
                   if source == name else "preview: the same graph on the pack's shipped tiny weights")
        image = compose(clip[len(clip) // 2], frames[source], name.replace("_", " "), caption)
        cv2.imwrite(os.path.join(ROOT, "workflows", name + ".jpg"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                    [cv2.IMWRITE_JPEG_QUALITY, 88])
    return 0


if __name__ == "__main__":
    sys.exit(main())
