"""The upscale job's settings, declared once: `vsr upscale`'s options and the Upscale nodes' inputs are
made from these fields (vsr_core.settings), and the pipeline takes this object."""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import InputError
from ..settings import check_settings, setting
from .cleaning import AUTO, parse_clean
from ..speed import PRECISIONS
from .detail import DETAIL_TILE_LR_PX

METHODS = ("learned", "learned-per-frame", "detail-per-frame", "bicubic")
TILE_PX = 512               # the upscaler's tile, in input pixels: the one default (restore and the nodes too)
TILE_OVERLAP_PX = 16
DEFAULT_KEYFRAME_EVERY = 8
RELAY_FUSIONS = ("learned", "hand")   # the shipped learned fusion, or the hand-designed mix (relay/transfer.py)


@dataclass(frozen=True)
class UpscaleSettings:
    scale: int = setting(4, "output size: x4 or x2 the input (x2 resamples the x4 network's output)",
                         choices=(4, 2))
    method: str | None = setting(
        None, "'learned': the shipped temporally consistent video upscaler (default when its weights are "
              "installed); 'learned-per-frame': the same network without temporal propagation; "
              "'detail-per-frame': the detail model (--detail) alone on every frame, the generative baseline "
              "whose texture changes from frame to frame; 'bicubic': the classical baseline", choices=METHODS)
    weights: str | None = setting(None, "a VideoUpscaler .safetensors with its .json card (default: the "
                                        "shipped weights)")
    detail: str | None = setting(
        None, "the detail model: realesrgan-x4plus (shipped, Real-ESRGAN x4plus, BSD-3-Clause) or the path of "
              "a Real-ESRGAN RRDBNet / SRVGGNetCompact checkpoint (.safetensors or .pth). With the default "
              "method it makes the keyframes whose detail is relayed to every frame by motion; --method "
              "detail-per-frame runs it alone on every frame (default there: realesrgan-x4plus)")
    keyframe_every: int = setting(DEFAULT_KEYFRAME_EVERY, "with a detail model: frames from one keyframe to "
                                  "the next (keyframes also at scene cuts). Fewer keyframes: faster, but "
                                  "detail is carried further (it fades where motion cannot be followed)",
                                  min=1, max=256)
    detail_strength: float = setting(0.8, "with a detail model: how much of the keyframes' detail is let in, "
                                          "0 (the learned output alone) to 1", min=0.0, max=1.0, step=0.05)
    relay_fusion: str = setting("learned", "with a detail model: how carried detail is mixed between "
                                           "keyframes: 'learned' (a small network trained on real clips with "
                                           "true and generated keyframes) or 'hand' (the hand-designed "
                                           "warp-and-gate mix)", choices=RELAY_FUSIONS)
    window: int = setting(12, "frames processed together; memory grows with it (lowered automatically, and "
                              "said so, when the job would not fit the free memory)", min=1, max=256)
    window_overlap: int = setting(2, "frames shared by consecutive windows and cross-faded (learned methods)",
                                  min=0, max=64, old_flags=("--overlap",))
    tile_px: int | None = setting(
        None, f"spatial tile size in input (LR) pixels, 0 for whole frames (default {TILE_PX} for the learned "
              f"methods, {DETAIL_TILE_LR_PX} for the detail model); memory grows with tile area x window; "
              f"lowered automatically, and said so, when the job would not fit the free memory",
        min=0, max=4096, step=16, old_flags=("--tile",), old_inputs=("tile", "tile_lr_px"))
    tile_overlap_px: int = setting(TILE_OVERLAP_PX, "input pixels shared by neighbouring tiles, blended",
                                   min=0, max=256, cli=False)
    clean: str | float = setting(AUTO, "how hard the learned upscaler cleans noise and compression: auto (read "
                                       "from the clip's first frames, logged) or 0 (keep everything in the "
                                       "input as detail: grain, skin, foliage) to 1 (clean hardest)")
    stabilize: float = setting(0.0, "flow-guided temporal stabilisation strength 0..1 on top of the learned "
                                    "upscaler (0: off; 0.6 lowers the warping error further at a small speed "
                                    "cost)", min=0.0, max=1.0, step=0.05)
    precision: str = setting("auto", "the network's precision (auto: bf16 where a one-time measurement on "
                                     "this CPU found it faster, cached in ~/.cache/vsr; env "
                                     "VSR_PRECISION=fp32|bf16 sets what auto means)", choices=PRECISIONS)

    def __post_init__(self):
        check_settings(self)
        object.__setattr__(self, "clean", parse_clean(self.clean))     # "auto" or a number 0..1, text too
        learned = self.method in (None, "learned", "learned-per-frame")   # the methods whose windows overlap
        if learned and self.window > 1 and 2 * self.window_overlap >= self.window:
            raise InputError(f"window_overlap={self.window_overlap!r}; expected 2 * window_overlap < "
                             f"window={self.window}")
        if self.tile_px not in (None, 0) and self.tile_px <= 2 * self.tile_overlap_px:
            raise InputError(f"tile_px={self.tile_px!r}; expected 0 (no tiling) or more than "
                             f"{2 * self.tile_overlap_px} input pixels (twice the {self.tile_overlap_px}-pixel "
                             f"tile overlap)")

    @property
    def temporal(self) -> bool:
        """Propagation across frames ('learned-per-frame' runs the network frame by frame)."""
        return self.method != "learned-per-frame"

    @property
    def upscaler_tile_px(self) -> int:
        return TILE_PX if self.tile_px is None else self.tile_px

    @property
    def detail_tile_px(self) -> int:
        return DETAIL_TILE_LR_PX if self.tile_px is None else self.tile_px


def check_model_scale(scale: int, model_scale: int) -> None:
    """The network can make at most its own scale (x2 is the x4 network resampled)."""
    if scale > model_scale:
        raise InputError(f"scale={scale!r}; expected at most the model's x{model_scale}")
