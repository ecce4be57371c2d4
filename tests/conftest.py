"""Shared test data: real-photo clips from a virtual camera, media files made with PyAV, and
deterministic weights for golden comparisons."""
from __future__ import annotations

import importlib
import importlib.util
import math
import os
import sys
from fractions import Fraction

import av
import numpy as np
import pytest
import torch

from vsr_core.data import CameraPath, photo, virtual_camera_clip
from vsr_core.errors import Interrupted
from vsr_core.progress import Reporter

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACK_NAME = "vsr_node_pack"


def load_node_pack(folder: str = ROOT) -> dict:
    """NODE_CLASS_MAPPINGS of the pack in `folder`, imported by path as ComfyUI imports custom nodes
    (once per test session)."""
    if PACK_NAME not in sys.modules:
        init = os.path.join(folder, "__init__.py")
        spec = importlib.util.spec_from_file_location(PACK_NAME, init, submodule_search_locations=[folder])
        module = importlib.util.module_from_spec(spec)
        sys.modules[PACK_NAME] = module
        spec.loader.exec_module(module)
    return sys.modules[PACK_NAME].NODE_CLASS_MAPPINGS


def pack_module(name: str):
    """A module of the loaded pack, e.g. pack_module("nodes.run_workflow")."""
    load_node_pack()
    return importlib.import_module(f"{PACK_NAME}.{name}")


def run_workflow(argv: list[str]) -> int:
    """`python -m nodes ARGV...` inside this process."""
    return pack_module("nodes.run_workflow").main(argv)


@pytest.fixture(scope="session", autouse=True)
def private_user_cache(tmp_path_factory):
    """The CPU precision verdict (vsr_core.cpu_precision) goes to a temporary cache folder, not the user's."""
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg_cache"))
    yield


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module (`pytestmark = pytest.mark.usefixtures("one_thread")`): tiny tensors are
    slower on two threads when the CPUs are shared, and float sums differ in the last bit between thread
    counts, so a module comparing runs must not change count midway."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def clip() -> np.ndarray:
    """12 frames, 48x64, panning over scikit-image's astronaut photo."""
    return virtual_camera_clip(photo("astronaut"), 12, (48, 64), CameraPath(pan=(3.0, 1.0)))


def tone(seconds: float, rate: int = 48000, channels: int = 2) -> np.ndarray:
    """int16-exact float samples [C,S]: a chord, so lossless codecs must return them bit for bit."""
    t = np.arange(int(seconds * rate)) / rate
    waves = [0.3 * np.sin(2 * np.pi * f * t) for f in (440.0, 660.0, 550.0)[:channels]]
    return (np.round(np.stack(waves) * 32767) / 32768).astype(np.float32)


def write_media(path, frames: np.ndarray, fps=Fraction(24), audio: np.ndarray | None = None,
                audio_codec: str = "pcm_s16le", rate: int = 48000, video_codec: str = "ffv1") -> str:
    """Write a test file with PyAV directly (independent of the writer under test)."""
    with av.open(str(path), "w") as out:
        vs = out.add_stream(video_codec, rate=fps)
        vs.pix_fmt = "bgr0" if video_codec == "ffv1" else "yuv420p"
        vs.width, vs.height = frames.shape[2], frames.shape[1]
        astream = None
        if audio is not None:
            layout = "stereo" if audio.shape[0] == 2 else "mono"
            astream = out.add_stream(audio_codec, rate=rate, layout=layout)
            fmt = "s16" if audio_codec in ("pcm_s16le", "flac") else "fltp"
            astream.codec_context.format = fmt
        for i, f in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")
            vf.pts = i
            out.mux(vs.encode(vf))
        out.mux(vs.encode(None))
        if astream is not None:
            af = av.AudioFrame.from_ndarray(np.ascontiguousarray(audio), format="fltp",
                                            layout="stereo" if audio.shape[0] == 2 else "mono")
            af.sample_rate = rate
            af.pts = 0
            af.time_base = Fraction(1, rate)
            out.mux(astream.encode(af))
            out.mux(astream.encode(None))
    return str(path)


@pytest.fixture
def media(tmp_path, clip):
    """Factory: media(name, **write_media kwargs) -> path of a clip file in tmp_path."""
    def make(name: str, frames=None, **kwargs) -> str:
        return write_media(tmp_path / name, clip if frames is None else frames, **kwargs)
    return make


def seeded_state_dict(shapes: dict, seed: int) -> dict:
    """Deterministic weights from key names and shapes (same code made the goldens)."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for k in sorted(shapes):
        shape = tuple(shapes[k])
        r = torch.randn(shape, generator=g, dtype=torch.float64)
        if k.endswith("temporal_alpha"):
            t = 0.3 + 0.1 * r
        elif len(shape) >= 2:
            t = r / math.sqrt(math.prod(shape[1:]))
        elif k.endswith(".weight"):
            t = 1.0 + 0.1 * r
        else:
            t = 0.1 * r
        out[k] = t.to(torch.float32)
    return out


def read_video(path) -> np.ndarray:
    """Every frame of a video file or PNG folder, uint8 [T,H,W,3], as the pack's reader gives them."""
    from vsr_core.video import open_video
    return open_video(str(path)).read_all()


class StopAfter(Reporter):
    """Cancels (like Ctrl-C or ComfyUI's Cancel) once `frames` output frames were reported (None: never);
    keeps the log."""

    def __init__(self, frames: int | None = None):
        self.frames, self.done, self.messages = frames, 0, []

    def update(self, n=1):
        self.done += n

    def check_interrupt(self):
        if self.frames is not None and self.done >= self.frames:
            raise Interrupted("cancelled")

    def log(self, message):
        self.messages.append(message)
