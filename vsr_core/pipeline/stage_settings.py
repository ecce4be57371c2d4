"""The diffusion path's last stages' settings, declared once: Temporal Decode's and Refine's, for their
nodes' inputs and the restore job's stages (vsr_core.settings)."""
from __future__ import annotations

from dataclasses import dataclass

from ..ops.colorfix import COLOR_FIX_METHODS
from ..settings import check_settings, setting


@dataclass(frozen=True)
class DecodeSettings:
    fusion_weight: float = setting(-1.0, "CFW fidelity weight: 0 = generated detail, higher = closer to the "
                                         "input (StableSR 0.5, MGLD-VSR 1.0; -1 uses the model's default)",
                                   min=-1.0, max=2.0, step=0.05, old_inputs=("fusion_w",), cli=False)
    window: int = setting(5, "frames decoded together by a temporal decoder", min=1, max=64, cli=False)
    window_overlap: int = setting(1, "frames shared by neighbouring windows, crossfaded", min=0, max=63,
                                  cli=False)
    tile_latent: int = setting(64, "tile size for decoding, in latent cells (x8 pixels)", min=8, max=512,
                               step=8, old_inputs=("tile",), cli=False)
    tile_overlap_latent: int = setting(16, "tile overlap in latent cells", min=0, max=256, step=4,
                                       old_inputs=("tile_overlap",), cli=False)

    def __post_init__(self):
        check_settings(self)

    @property
    def cfw_weight(self) -> float | None:
        """The weight decode_latents takes (None: the VAE's own default)."""
        return None if self.fusion_weight < 0 else self.fusion_weight

    def pieces(self) -> dict:
        """The sizes that shrink when memory runs out (pipeline.memory_fallback.smaller_pieces)."""
        return {"window": self.window, "window_overlap": self.window_overlap, "tile_latent": self.tile_latent,
                "tile_overlap_latent": self.tile_overlap_latent}


@dataclass(frozen=True)
class RefineSettings:
    blend: float = setting(0.5, "share of the upscaler's frames X_u in the result, 0..1 (SATeCo's w: 0.5); the "
                                "rest comes from the diffusion path (the fixed blend's weight)", min=0.0, max=1.0,
                           step=0.05, old_inputs=("w",), cli=False)
    color_fix: str = setting("none", "match colours to the upscaled frames X_u afterwards: AdaIN (mean/std) or "
                                     "wavelet (low frequencies)", choices=COLOR_FIX_METHODS, cli=False)

    def __post_init__(self):
        check_settings(self)
