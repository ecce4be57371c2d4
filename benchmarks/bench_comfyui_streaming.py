"""Long videos inside a real ComfyUI: peak memory of the server for 24 vs 240 frames, and cancel + resume.

    python benchmarks/bench_comfyui_streaming.py --comfyui /path/to/ComfyUI --python /path/to/venv/bin/python

ComfyUI is not on PyPI, so this runs against a checkout you provide (with this
pack linked into its custom_nodes/ and its requirements installed in the
venv of --python). For each case a fresh server is started with
`main.py --cpu`, one workflow is queued through POST /prompt, and the
server's peak resident memory (VmHWM) is read when it finishes:

- `workflows/api/long_video.json` (core Load Video -> Upscale Video (VSR,
  streaming) -> core Save Video) on 24 and 240 frames of 320x180 -> 1280x720;
- `workflows/api/fast_path.json` (IMAGE batches: Load Video (VSR) ->
  Upscale (VSR) -> Save Video (VSR)) on the same clips, for comparison.

Then the streaming workflow on 240 frames is cancelled with POST /interrupt
once its first chunk is cached, queued again, and its output compared frame
by frame with the uninterrupted run's; fps and audio of the result are checked.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from fractions import Fraction

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from vsr_core.video import VideoWriter, open_video  # noqa: E402
from vsr_core.video.audio import AudioClip  # noqa: E402

PORT = 8190


def make_clip(path: str, frames: int) -> None:
    from vsr_core.data import CameraPath, photo, virtual_camera_clip
    clip = virtual_camera_clip(photo("astronaut"), frames, (180, 320), CameraPath(pan=(1.5, 0.4)))
    rate = 48000
    t = np.arange(int(frames / 24 * rate)) / rate
    audio = AudioClip(np.stack([0.2 * np.sin(2 * np.pi * 440 * t)] * 2).astype(np.float32), rate)
    with VideoWriter(path, Fraction(24), crf=18, audio=audio, overwrite=True) as w:
        w.write(clip)


def call(path: str, body: dict | None = None) -> dict:
    req = urllib.request.Request(f"http://127.0.0.1:{PORT}{path}", method="POST" if body is not None else "GET",
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        data = r.read()
    return json.loads(data) if data else {}


class Server:
    def __init__(self, comfyui: str, python: str):
        self.proc = subprocess.Popen([python, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(PORT)],
                                     cwd=comfyui, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(600):
            try:
                call("/system_stats")
                return
            except OSError:
                time.sleep(0.5)
        raise RuntimeError("ComfyUI did not start")

    def peak_rss_mb(self) -> float:
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM"):
                    return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self):
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def queue(prompt: dict) -> str:
    return call("/prompt", {"prompt": prompt, "client_id": "bench"})["prompt_id"]


def wait(prompt_id: str, timeout: float = 3600) -> dict:
    t0 = time.time()
    while time.time() - t0 < timeout:
        hist = call(f"/history/{prompt_id}")
        if prompt_id in hist and hist[prompt_id].get("status", {}).get("completed") is not None:
            return hist[prompt_id]
        time.sleep(0.5)
    raise TimeoutError(prompt_id)


def workflow(name: str, clip: str) -> dict:
    prompt = json.load(open(os.path.join(ROOT, "workflows", "api", name)))
    for node in prompt.values():
        if node["class_type"] == "LoadVideo":
            node["inputs"]["file"] = clip
        if node["class_type"] == "VSR_LoadVideo":
            node["inputs"]["video"] = clip
    return prompt


def saved_file(comfyui: str, entry: dict) -> str:
    for out in entry["outputs"].values():
        for key in ("images", "videos", "gifs"):
            for item in out.get(key, []):
                path = os.path.join(comfyui, item.get("type", "output"), item.get("subfolder", ""), item["filename"])
                if path.endswith((".mp4", ".mkv", ".mov")) and os.path.exists(path):
                    return path
    raise RuntimeError(f"no video saved: {json.dumps(entry['outputs'])[:400]}")


def run_case(args, name: str, clip: str) -> tuple[float, float, str]:
    server = Server(args.comfyui, args.python)
    try:
        t0 = time.time()
        entry = wait(queue(workflow(name, clip)))
        if entry["status"]["status_str"] != "success":
            raise RuntimeError(json.dumps(entry["status"])[:600])
        return server.peak_rss_mb(), time.time() - t0, saved_file(args.comfyui, entry)
    finally:
        server.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--comfyui", required=True)
    ap.add_argument("--python", required=True)
    ap.add_argument("--lengths", default="24,240")
    args = ap.parse_args()
    inputs = os.path.join(args.comfyui, "input")
    shutil.rmtree(os.path.join(args.comfyui, "temp", "vsr_streaming"), ignore_errors=True)
    lengths = [int(x) for x in args.lengths.split(",")]
    for n in lengths:
        make_clip(os.path.join(inputs, f"vsr_bench_{n}.mp4"), n)
    results = {}
    print("| workflow | frames | peak RSS of the server | seconds |\n|---|---|---|---|")
    for name in ("long_video.json", "fast_path.json"):
        for n in lengths:
            shutil.rmtree(os.path.join(args.comfyui, "temp", "vsr_streaming"), ignore_errors=True)
            rss, sec, path = run_case(args, name, f"vsr_bench_{n}.mp4")
            results[(name, n)] = path
            print(f"| {name} | {n} | {rss:.0f} MB | {sec:.0f} |", flush=True)
    # cancel half way, queue again, compare with the uninterrupted run
    n = lengths[-1]
    reference = open_video(results[("long_video.json", n)]).read_all()
    shutil.rmtree(os.path.join(args.comfyui, "temp", "vsr_streaming"), ignore_errors=True)
    server = Server(args.comfyui, args.python)
    try:
        prompt = workflow("long_video.json", f"vsr_bench_{n}.mp4")
        first = queue(prompt)
        temp = os.path.join(args.comfyui, "temp", "vsr_streaming")
        t0 = time.time()
        while time.time() - t0 < 1800:
            caches = [os.path.join(temp, c) for c in (os.listdir(temp) if os.path.isdir(temp) else [])
                      if c.endswith(".vsr-cache")]
            if any(f.startswith("chunk_") and f.endswith(".json") for c in caches for f in os.listdir(c)):
                break
            time.sleep(0.2)
        call("/interrupt", {})
        status = wait(first)["status"]["status_str"]
        entry = wait(queue(prompt))
        resumed = open_video(saved_file(args.comfyui, entry))
        frames = resumed.read_all()
        same = frames.shape == reference.shape and np.array_equal(frames, reference)
        print(f"\ncancelled run: {status}; queued again: {entry['status']['status_str']}, {len(frames)} frames, "
              f"fps {resumed.fps}, audio {'kept' if resumed.audio_ref() is not None else 'MISSING'}; "
              f"identical to the uninterrupted run: {same}")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
