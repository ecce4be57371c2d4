"""Model loaders: the diffusion model (UNet + structure encoder + null prompt) and the VAE."""
from __future__ import annotations

from vsr_core.checkpoints import load_components
from vsr_core.diffusion.model import DiffusionModel
from vsr_core.errors import InputError
from vsr_core.models.text_encoder import null_prompt_embedding

from .comfy_bridge import model_choices, register_model_folder, resolve_model

CATEGORY = "video super-resolution/loaders"
EXTENSIONS = (".safetensors", ".ckpt", ".pth", ".pt")
DIFFUSION_FOLDERS = ("vsr_diffusion", "checkpoints")
VAE_FOLDERS = ("vsr_vae", "vae", "checkpoints")
DTYPES = ["auto", "fp32", "fp16", "bf16"]
ADD_LAYERS = {"none": {}, "mgld temporal middle block": {"temporal_middle": True},
              "sateco sfa+tfa": {"sfa_tfa": True},
              "both": {"temporal_middle": True, "sfa_tfa": True}}

for _folder in ("vsr_diffusion", "vsr_vae"):
    register_model_folder(_folder, set(EXTENSIONS))


class VSR_LoadDiffusionModel:
    """SD 2.x, StableSR or MGLD-VSR checkpoint (or the pack's own) -> VSR_DIFFUSION (+ its VAE)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "ckpt_name": (model_choices(DIFFUSION_FOLDERS, EXTENSIONS), {"tooltip":
                          "Checkpoint from models/vsr_diffusion or models/checkpoints: SD 2.1-base, StableSR "
                          "stablesr_*.ckpt, MGLD-VSR mgldvsr_unet.ckpt, or one saved by this pack."}),
            "dtype": (DTYPES, {"default": "auto", "tooltip": "Cast the weights (auto keeps the file's)."}),
            "add_layers": (list(ADD_LAYERS), {"default": "none", "tooltip":
                           "Add MGLD's temporal middle block and/or SATeCo's SFA/TFA modules; they start as "
                           "exact identities (the base model's output is unchanged until trained)."}),
            "prediction": (["auto", "eps", "v"], {"default": "auto", "tooltip":
                           "What the UNet predicts; auto reads the pack's own files and assumes eps otherwise "
                           "(choose v for SD 2.x 768-v)."}),
        }}

    RETURN_TYPES = ("VSR_DIFFUSION", "VSR_VAE")
    RETURN_NAMES = ("model", "vae")
    OUTPUT_TOOLTIPS = ("UNet (with structure encoder if present) and the empty-prompt conditioning.",
                       "The checkpoint's own VAE, or None when the file has none.")
    FUNCTION = "load"
    CATEGORY = CATEGORY
    DESCRIPTION = "Load a latent diffusion checkpoint for Guided Sample, computing the empty prompt from its " \
                  "own text encoder."

    def load(self, ckpt_name, dtype, add_layers, prediction):
        path = resolve_model(ckpt_name, DIFFUSION_FOLDERS, "diffusion checkpoint")
        overrides = dict(ADD_LAYERS[add_layers])
        if prediction != "auto":
            overrides["prediction"] = prediction
        parts = load_components(path, ("unet", "vae", "text"), dtype=None if dtype == "auto" else dtype,
                                overrides=overrides)
        if "unet" not in parts:
            raise InputError(f"'{ckpt_name}' holds no UNet; expected a diffusion checkpoint (a VAE file goes "
                             f"into Load VAE (VSR))")
        unet = parts["unet"]
        context = null_prompt_embedding(parts.pop("text")).float() if "text" in parts else None
        model = DiffusionModel(unet, context=context, prediction=unet.config.prediction)
        return (model, parts.get("vae"))


class VSR_LoadVAE:
    """A VAE file -> VSR_VAE: plain SD, StableSR CFW (vqgan_cfw_*.ckpt) or MGLD's temporal video VAE."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "vae_name": (model_choices(VAE_FOLDERS, EXTENSIONS), {"tooltip":
                         "From models/vsr_vae, models/vae or models/checkpoints; the kind is detected from "
                         "the keys."}),
            "dtype": (DTYPES, {"default": "auto", "tooltip": "Cast the weights (auto keeps the file's)."}),
        }}

    RETURN_TYPES = ("VSR_VAE",)
    RETURN_NAMES = ("vae",)
    OUTPUT_TOOLTIPS = ("The VAE, with CFW fusion and temporal layers when the file has them.",)
    FUNCTION = "load"
    CATEGORY = CATEGORY
    DESCRIPTION = "Load a VAE, including StableSR's CFW decoder and MGLD-VSR's temporal video decoder."

    def load(self, vae_name, dtype):
        path = resolve_model(vae_name, VAE_FOLDERS, "VAE")
        parts = load_components(path, ("vae",), dtype=None if dtype == "auto" else dtype)
        if "vae" not in parts:
            raise InputError(f"'{vae_name}' holds no VAE (first_stage_model.* or encoder./decoder. keys)")
        return (parts["vae"],)


NODE_CLASS_MAPPINGS = {"VSR_LoadDiffusionModel": VSR_LoadDiffusionModel, "VSR_LoadVAE": VSR_LoadVAE}
NODE_DISPLAY_NAME_MAPPINGS = {"VSR_LoadDiffusionModel": "Load Diffusion Model (VSR)",
                              "VSR_LoadVAE": "Load VAE (VSR)"}
