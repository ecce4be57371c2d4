"""Model loaders: the diffusion model (UNet + structure encoder + null prompt) and the VAE."""
from __future__ import annotations

from vsr_core.api import has_shipped, load_diffusion_model, load_vae, shipped_path

from .comfy_bridge import NONE_FOUND, missing_model, model_choices, register_model_folder, resolve_model

CATEGORY = "video super-resolution/loaders"
EXTENSIONS = (".safetensors", ".ckpt", ".pth", ".pt")
DIFFUSION_FOLDERS = ("vsr_diffusion", "checkpoints")
VAE_FOLDERS = ("vsr_vae", "vae", "checkpoints")
DTYPES = ["auto", "fp32", "fp16", "bf16"]
ADD_LAYERS = {"none": {}, "mgld temporal middle block": {"temporal_middle": True},
              "sateco sfa+tfa": {"sfa_tfa": True},
              "both": {"temporal_middle": True, "sfa_tfa": True}}

# The pack's shipped tiny models (vsr_core/weights), listed first so a fresh install runs the graph.
DIFFUSION_DEFAULTS = {"default (shipped tiny diffusion UNet)": "diffusion"}
VAE_DEFAULTS = {"default (shipped tiny video VAE)": "video_vae", "default (shipped tiny VAE)": "vae"}

for _folder in ("vsr_diffusion", "vsr_vae"):
    register_model_folder(_folder, set(EXTENSIONS))


def _choices(folders, defaults: dict) -> list[str]:
    shipped = [name for name, kind in defaults.items() if has_shipped(kind)]
    names = [n for n in model_choices(folders, EXTENSIONS) if not (shipped and n == NONE_FOUND)]
    return shipped + names


def _resolve(name: str, folders, what: str, defaults: dict) -> str:
    return shipped_path(defaults[name]) if name in defaults else resolve_model(name, folders, what)


class VSR_LoadDiffusionModel:
    """SD 2.x, StableSR or MGLD-VSR checkpoint (or the pack's own) -> VSR_DIFFUSION (+ its VAE)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "ckpt_name": (_choices(DIFFUSION_FOLDERS, DIFFUSION_DEFAULTS), {"tooltip":
                          "Checkpoint from models/vsr_diffusion or models/checkpoints: SD 2.1-base, StableSR "
                          "stablesr_*.ckpt, MGLD-VSR mgldvsr_unet.ckpt, or one saved by this pack. The first "
                          "entry is the pack's shipped tiny UNet (pair it with the shipped tiny video VAE)."}),
            "dtype": (DTYPES, {"default": "auto", "tooltip": "Cast the weights (auto keeps the file's)."}),
            "add_layers": (list(ADD_LAYERS), {"default": "none", "tooltip":
                           "Add MGLD's temporal middle block and/or SATeCo's SFA/TFA modules; they start as "
                           "exact identities (the base model's output is unchanged until trained)."}),
            "prediction": (["auto", "eps", "v"], {"default": "auto", "tooltip":
                           "What the UNet predicts; auto reads the pack's own files and assumes eps otherwise "
                           "(choose v for SD 2.x 768-v)."}),
        }}

    @classmethod
    def VALIDATE_INPUTS(cls, ckpt_name):
        return missing_model(ckpt_name, DIFFUSION_FOLDERS, "diffusion checkpoint", DIFFUSION_DEFAULTS)

    RETURN_TYPES = ("VSR_DIFFUSION", "VSR_VAE")
    RETURN_NAMES = ("model", "vae")
    OUTPUT_TOOLTIPS = ("UNet (with structure encoder if present) and the empty-prompt conditioning.",
                       "The checkpoint's own VAE, or None when the file has none.")
    FUNCTION = "load"
    CATEGORY = CATEGORY
    DESCRIPTION = "Load a latent diffusion checkpoint for Guided Sample, computing the empty prompt from its " \
                  "own text encoder."

    def load(self, ckpt_name, dtype, add_layers, prediction):
        path = _resolve(ckpt_name, DIFFUSION_FOLDERS, "diffusion checkpoint", DIFFUSION_DEFAULTS)
        overrides = dict(ADD_LAYERS[add_layers])
        if prediction != "auto":
            overrides["prediction"] = prediction
        model, vae = load_diffusion_model(path, dtype=None if dtype == "auto" else dtype, overrides=overrides)
        model.source = vae_source = {"path": path, "dtype": dtype, "overrides": overrides}  # resumable jobs' key
        if vae is not None:
            vae.source = vae_source
        return (model, vae)


class VSR_LoadVAE:
    """A VAE file -> VSR_VAE: plain SD, StableSR CFW (vqgan_cfw_*.ckpt) or MGLD's temporal video VAE."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "vae_name": (_choices(VAE_FOLDERS, VAE_DEFAULTS), {"tooltip":
                         "From models/vsr_vae, models/vae or models/checkpoints; the kind is detected from "
                         "the keys. The first entries are the pack's shipped tiny video VAE (temporal CFW "
                         "decoder) and tiny VAE, for the shipped tiny UNet."}),
            "dtype": (DTYPES, {"default": "auto", "tooltip": "Cast the weights (auto keeps the file's)."}),
        }}

    @classmethod
    def VALIDATE_INPUTS(cls, vae_name):
        return missing_model(vae_name, VAE_FOLDERS, "VAE", VAE_DEFAULTS)

    RETURN_TYPES = ("VSR_VAE",)
    RETURN_NAMES = ("vae",)
    OUTPUT_TOOLTIPS = ("The VAE, with CFW fusion and temporal layers when the file has them.",)
    FUNCTION = "load"
    CATEGORY = CATEGORY
    DESCRIPTION = "Load a VAE, including StableSR's CFW decoder and MGLD-VSR's temporal video decoder."

    def load(self, vae_name, dtype):
        path = _resolve(vae_name, VAE_FOLDERS, "VAE", VAE_DEFAULTS)
        vae = load_vae(path, dtype=None if dtype == "auto" else dtype, name=f"'{vae_name}'")
        vae.source = {"path": path, "dtype": dtype}     # what resumable jobs key their cache by
        return (vae,)


NODE_CLASS_MAPPINGS = {"VSR_LoadDiffusionModel": VSR_LoadDiffusionModel, "VSR_LoadVAE": VSR_LoadVAE}
NODE_DISPLAY_NAME_MAPPINGS = {"VSR_LoadDiffusionModel": "Load Diffusion Model (VSR)",
                              "VSR_LoadVAE": "Load VAE (VSR)"}
