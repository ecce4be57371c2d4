"""Training samples of the relay's learned fusion, made once and cached (the detail model, the faithful
upscaler and the flows are the expensive parts; training then only reads tensors).

Two kinds, alternating:

- ``truth``: a real training clip (prepare-real-videos' 'train' split); keyframes 0 and 8 are the ground
  truth; the target of frame t is S_t + high_pass(GT_t - S_t): the true detail, wherever the real motion
  (occlusion, deformation, lighting) let it be carried or not.
- ``generated``: a real training frame (or a training photo) filmed by a virtual camera, so the motion is
  known exactly; in a share ``deform`` of them the scene also bends and sways (a smooth non-rigid motion,
  data/virtual_camera.SceneMotion), as real subjects do; keyframes 0 and 8 are the detail model's
  (Real-ESRGAN x4plus) on the LR keyframes; the target is that invented detail carried by the *true* motion
  and mixed like the relay mixes it: what a perfect relay of generated detail shows.

The LR clip is bicubic x4, quantised, and in a share of the samples also through h264 (CRF 23-33). The
faithful frames S come from the shipped upscaler. Each sample stores, for frames 1..7, the fusion's inputs
exactly as the relay computes them at inference (relay/clip.py, relay/learned.py) and the target.
"""
from __future__ import annotations

import io
import os

import numpy as np
import torch
import torch.nn.functional as F

from ..data.clips import TRAIN_PHOTOS, load_photo, random_path
from ..data.real_videos import RealVideoClips
from ..data.virtual_camera import camera_flow, random_scene_motion, virtual_camera_clip
from ..errors import InputError
from ..flow.dis import DISFlow
from ..flow.warp import backward_warp, inside_mask
from ..relay.clip import RELAY_FLOW_PRESET, frame_carried
from ..relay.motion import KeyframeFlows
from ..relay.learned import fusion_inputs
from ..relay.transfer import carry, high_pass, keyframe_detail, mix_detail
from ..safe_files import write_atomic
from .codec import codec_roundtrip
from .degradations import bi_downsample, quantize

FRAMES = 9                  # keyframes at 0 and 8, the relay's default spacing
KEYS = (0, FRAMES - 1)
H264_SHARE = 0.4
H264_CRF = (23, 33)
PHOTO_SHARE = 0.3           # generated samples filmed over a training photo instead of a real frame
MAX_SCENE_SPEED = 1.5       # px per frame (HR) of the scene's own non-rigid motion, at its fastest
MAX_TARGET_GAIN = 1.5       # the most a moved texture's energy is restored by (bicubic fades it far less)
INPUT_ORDER = ("faithful", "prev_detail", "prev_trust", "next_detail", "next_trust", "mix")
INPUT_CHANNELS = {"faithful": 3, "prev_detail": 3, "prev_trust": 1, "next_detail": 3, "next_trust": 1, "mix": 3}
SAMPLE_NAME = "sample_{:06d}.pt"


def split_inputs(stacked: torch.Tensor) -> dict:
    """A sample's [N,14,H,W] inputs -> the fusion's keyword inputs (without nearness), as float32."""
    sizes = [INPUT_CHANNELS[name] for name in INPUT_ORDER]
    return dict(zip(INPUT_ORDER, torch.split(stacked.float(), sizes, 1)))


def _degrade(hr: torch.Tensor, rng: np.random.Generator, scale: int) -> tuple[torch.Tensor, str]:
    lr = quantize(bi_downsample(hr, scale))
    if rng.random() >= H264_SHARE:
        return lr, "bi"
    crf = int(rng.integers(H264_CRF[0], H264_CRF[1] + 1))
    return quantize(codec_roundtrip(lr, "libx264", crf=crf)), f"h264 crf {crf}"


def _truth_clip(clips: RealVideoClips, rng: np.random.Generator, side: int) -> torch.Tensor:
    window = None
    while window is None:       # a drawn clip smaller than the crop is skipped
        window = clips.window(rng, FRAMES, side)
    return torch.from_numpy(window).permute(0, 3, 1, 2).float() / 255


def _source_image(clips: RealVideoClips, rng: np.random.Generator) -> np.ndarray:
    if rng.random() < PHOTO_SHARE:
        return load_photo(TRAIN_PHOTOS[int(rng.integers(len(TRAIN_PHOTOS)))])
    clip = clips.clips[int(rng.integers(len(clips.clips)))]
    arr = clips.frames(clip)
    return np.array(arr[int(rng.integers(len(arr)))])


def _camera(clips: RealVideoClips, rng: np.random.Generator, side: int, deform: float = 0.0):
    """(source image, CameraPath, start, SceneMotion or None) of a generated sample: its first draws (with
    ``deform`` 0 no scene motion is drawn, so the samples are those made before it existed)."""
    image = _source_image(clips, rng)
    ih, iw = image.shape[:2]
    path = random_path(rng, max_pan=4.0, max_zoom=0.015, max_roll=0.5)
    half = side / 2
    center = (float(rng.uniform(min(half, iw / 2), max(half, iw - half))),
              float(rng.uniform(min(half, ih / 2), max(half, ih - half))))
    scene = random_scene_motion(rng, FRAMES, max_speed=MAX_SCENE_SPEED) if deform and rng.random() < deform \
        else None
    return image, path, center, scene


def _next_flows(path, center, side: int, scene=None) -> torch.Tensor:
    """float16 [FRAMES-3,2,side,side]: the true flow from frame t to t+1, t = 1..FRAMES-3 (the fused frames)."""
    return torch.stack([torch.from_numpy(camera_flow(path, t, t + 1, (side, side), center, scene))
                        for t in range(1, FRAMES - 2)]).half()


def _camera_clip(clips: RealVideoClips, rng: np.random.Generator, side: int, deform: float = 0.0):
    """(HR [T,3,side,side], the true flow t -> k [1,2,side,side] for every fused frame t and keyframe k, the
    flows between consecutive fused frames)."""
    image, path, center, scene = _camera(clips, rng, side, deform)
    hr = virtual_camera_clip(image, FRAMES, (side, side), path, start=center, scene=scene)
    flows = {(t, k): torch.from_numpy(camera_flow(path, t, k, (side, side), center, scene))[None]
             for t in range(1, FRAMES - 1) for k in KEYS}
    return torch.from_numpy(hr).permute(0, 3, 1, 2).float() / 255, flows, _next_flows(path, center, side, scene)


def _local_energy(x: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(x.pow(2).mean(1, keepdim=True), 7, stride=1, padding=3, count_include_pad=False)


def _moved_at_energy(detail: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """The keyframe's detail moved along ``flow`` at its own local energy: a texture that moves keeps its
    strength, while resampling it (bicubic, at fractional positions) fades it a little."""
    moved = carry(detail, flow)
    wanted = backward_warp(_local_energy(detail), flow, padding_mode="border")
    gain = (wanted / _local_energy(moved).clamp_min(1e-10)).sqrt().clamp(1.0, MAX_TARGET_GAIN)
    return moved * gain


def _true_targets(faithful: torch.Tensor, details: dict, flows: dict) -> list[torch.Tensor]:
    """Frames 1..7: the keyframes' detail carried by the true motion, mixed as the relay mixes it."""
    out = []
    for t in range(1, FRAMES - 1):
        carried = [(_moved_at_energy(details[k], flows[(t, k)]), inside_mask(flows[(t, k)]), t - k) for k in KEYS]
        out.append((faithful[t:t + 1] + mix_detail(carried)).clamp(0, 1))
    return out


@torch.inference_mode()
def make_sample(kind: str, clips: RealVideoClips, rng: np.random.Generator, upscaler, make_keyframe,
                lr_side: int = 48, scale: int = 4, deform: float = 0.0) -> dict:
    """One cached sample: inputs [7,14,H,W] and target [7,3,H,W] (float16), nearness [7,2], and its labels.
    ``make_keyframe(lr [1,3,h,w]) -> HR [1,3,H,W]``: the detail model as the relay runs it on keyframes."""
    from ..models.upscaler import upscale_clip
    side = lr_side * scale
    hr, flows, next_flows = (_truth_clip(clips, rng, side), None, None) if kind == "truth" else \
        _camera_clip(clips, rng, side, deform)
    lr, degradation = _degrade(hr, rng, scale)
    faithful = upscale_clip(upscaler, lr)
    keys = {k: hr[k:k + 1] if kind == "truth" else make_keyframe(lr[k:k + 1]) for k in KEYS}
    details = {k: keyframe_detail(keys[k], faithful[k:k + 1], scale) for k in KEYS}
    if kind == "truth":
        targets = [faithful[t:t + 1] + high_pass(hr[t:t + 1] - faithful[t:t + 1], scale)
                   for t in range(1, FRAMES - 1)]
    else:
        targets = _true_targets(faithful, details, flows)
    relay_flows = KeyframeFlows(faithful, DISFlow(RELAY_FLOW_PRESET))   # what the relay itself estimates
    inputs, nearness = [], []
    for t in range(1, FRAMES - 1):
        feed = fusion_inputs(faithful[t:t + 1], frame_carried(t, faithful, details, (), relay_flows))
        inputs.append(torch.cat([feed[name] for name in INPUT_ORDER], 1))
        nearness.append(feed["nearness"])
    sample = {"inputs": torch.cat(inputs).half(), "target": torch.cat(targets).clamp(0, 1).half(),
              "nearness": torch.cat(nearness), "kind": kind, "degradation": degradation}
    if next_flows is not None:      # the temporal loss's motion: known exactly for generated samples
        sample["flows_next"] = next_flows
    return sample


def prepare_fusion_data(out: str, real_videos: str, samples: int, upscaler, make_keyframe, split: str = "train",
                        lr_side: int = 48, seed: int = 0, log=print, deform: float = 0.0) -> int:
    """Write ``samples`` samples (kinds alternating) to ``out``/sample_NNNNNN.pt; ones already there are kept,
    so an interrupted run continues. Each sample's draw depends only on (seed, index, deform). ``deform``: the
    share of generated samples whose scene also moves non-rigidly. Returns the count."""
    if isinstance(deform, bool) or not isinstance(deform, (int, float)) or not 0.0 <= deform <= 1.0:
        raise InputError(f"deform={deform!r}; expected a share from 0 to 1 of generated samples with scene motion")
    clips = RealVideoClips(real_videos, split)
    os.makedirs(out, exist_ok=True)
    for i in range(samples):
        path = os.path.join(out, SAMPLE_NAME.format(i))
        if os.path.exists(path):
            continue
        kind = "truth" if i % 2 == 0 else "generated"
        sample = make_sample(kind, clips, np.random.default_rng([seed, i]), upscaler, make_keyframe, lr_side,
                             deform=deform)
        buffer = io.BytesIO()
        torch.save(sample, buffer)
        write_atomic(path, buffer.getvalue())
        log(f"{split} sample {i}: {kind}, {sample['degradation']}")
    return samples
