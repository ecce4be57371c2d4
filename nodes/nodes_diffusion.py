"""Guided Sample and Temporal Decode: the diffusion stages."""
from __future__ import annotations

from vsr_core import api
from vsr_core.api import (DecodeSettings, InputError, SampleSettings, check_image_batch, tchw_to_thwc,
                          thwc_to_tchw, with_values)

from .comfy_bridge import (context_from_conditioning, core_model_denoiser, core_vae_decode, core_vae_encode,
                           is_core_model, is_core_vae, make_reporter, on_compute_device)
from .convert import latent_samples
from .setting_inputs import renamed_inputs, setting_inputs

CATEGORY = "video super-resolution/diffusion"
SAMPLE = SampleSettings()
# the order saved workflows hold the widgets in
SAMPLE_INPUTS = ("steps", "seed", "sampler", "guidance_scale", "guidance_rule", "mgld_flow_offset", "guidance_start",
                 "guidance_end", "guide_through_network", "window", "window_overlap", "tile_latent",
                 "tile_overlap_latent")
DECODE_INPUTS = ("fusion_weight", "window", "window_overlap", "tile_latent", "tile_overlap_latent")


def _encode(vae, images, reporter):
    if is_core_vae(vae):
        return core_vae_encode(vae, images)
    return api.encode(vae, thwc_to_tchw(images), reporter=reporter)


class VSR_GuidedSample:
    """Motion-guided latent diffusion over the whole clip, in temporal windows and latent tiles."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": ("VSR_DIFFUSION,MODEL", {"tooltip":
                          "From Load Diffusion Model (VSR), or any SD-family MODEL from ComfyUI's loaders."}),
                **setting_inputs(SAMPLE, *SAMPLE_INPUTS),
            },
            "optional": {
                "upscaled": ("IMAGE", {"tooltip": "The upscaled frames to restore (encoded with the VAE)."}),
                "vae": ("VSR_VAE,VAE", {"tooltip": "Encodes `upscaled`; needed unless `latent` is given."}),
                "latent": ("LATENT", {"tooltip": "Already-encoded upscaled frames, instead of `upscaled`."}),
                "flow": ("VSR_FLOW", {"tooltip": "Motion for guidance, from Estimate Flow (any resolution)."}),
                "conditioning": ("CONDITIONING", {"tooltip":
                                 "Text conditioning; default is the model's empty prompt (needed for a core "
                                 "MODEL)."}),
                "free_memory_after": ("BOOLEAN", {"default": True, "tooltip":
                                  "Move the pack's UNet and VAE back to system RAM when done, so the next "
                                  "stage has the GPU memory (off: keep them loaded)."}),
            },
        }

    # inputs renamed for readability (old name -> new); the runner maps prompts saved with the old names
    RENAMED_INPUTS = {**renamed_inputs(SAMPLE, *SAMPLE_INPUTS), "offload_after": "free_memory_after"}
    RETURN_TYPES = ("LATENT",)
    RETURN_NAMES = ("latent",)
    OUTPUT_TOOLTIPS = ("Restored latents [frames,4,h,w], unscaled like every ComfyUI LATENT.",)
    FUNCTION = "sample"
    CATEGORY = CATEGORY
    DESCRIPTION = "MGLD-VSR motion-guided sampling from the noised upscaled latent, window by window."

    def sample(self, model, steps, seed, sampler, guidance_scale, guidance_rule, mgld_flow_offset,
               guidance_start, guidance_end, guide_through_network, window, window_overlap, tile_latent,
               tile_overlap_latent, upscaled=None, vae=None, latent=None, flow=None, conditioning=None,
               free_memory_after=True):
        settings = with_values(SAMPLE, dict(zip(SAMPLE_INPUTS, (
            steps, seed, sampler, guidance_scale, guidance_rule, mgld_flow_offset, guidance_start, guidance_end,
            guide_through_network, window, window_overlap, tile_latent, tile_overlap_latent))))
        reporter = make_reporter()
        model = self._model(model, conditioning)
        if latent is not None:
            samples, extra = latent_samples(latent), {k: v for k, v in latent.items() if k != "samples"}
        elif upscaled is not None:
            if vae is None:
                raise InputError("`upscaled` frames need a `vae` to encode them (or give `latent` instead)")
            images = check_image_batch(upscaled, "upscaled")
            with on_compute_device(vae, free_memory_after):
                samples = _encode(vae, images, reporter)
            extra = {"vsr_size": tuple(images.shape[1:3])}
        else:
            raise InputError("Guided Sample needs `upscaled` frames (with a `vae`) or a `latent`")
        with on_compute_device(getattr(model, "unet", None), free_memory_after):
            out = api.guided_sample(samples, model, settings, flow, reporter)
        return ({"samples": out, **extra},)

    @staticmethod
    def _model(model, conditioning):
        """The pack's diffusion model (with the conditioning's text, if any), or a core MODEL adapted."""
        context = context_from_conditioning(conditioning) if conditioning is not None else None
        if is_core_model(model):
            if context is None:
                raise InputError("a core MODEL needs `conditioning` (e.g. CLIP Text Encode with an empty "
                                 "prompt); only the pack's loader computes the empty prompt itself")
            return core_model_denoiser(model, context)
        if not isinstance(model, api.DiffusionModel):
            raise InputError(f"model is a {type(model).__name__}; expected VSR_DIFFUSION or a ComfyUI MODEL")
        return api.with_conditioning(model, context)


class VSR_TemporalDecode:
    """Latents -> frames with MGLD's temporal decoder / StableSR's CFW, or any VAE."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "latent": ("LATENT", {"tooltip": "From Guided Sample (or any image LATENT)."}),
                "vae": ("VSR_VAE,VAE", {"tooltip": "A temporal/CFW VAE from Load VAE (VSR), or any ComfyUI VAE "
                                        "(then decoded frame by frame)."}),
                **setting_inputs(DecodeSettings(), *DECODE_INPUTS),
            },
            "optional": {
                "upscaled": ("IMAGE", {"tooltip": "The upscaled frames the latent came from: CFW fuses their "
                                       "features, and the output is cropped to their size."}),
                "free_memory_after": ("BOOLEAN", {"default": True, "tooltip":
                                  "Move the pack's VAE back to system RAM when done (off: keep it loaded)."}),
            },
        }

    # inputs renamed for readability (old name -> new); the runner maps prompts saved with the old names
    RENAMED_INPUTS = {**renamed_inputs(DecodeSettings(), *DECODE_INPUTS), "offload_after": "free_memory_after"}
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("frames",)
    OUTPUT_TOOLTIPS = ("Decoded frames [frames,H,W,3].",)
    FUNCTION = "decode"
    CATEGORY = CATEGORY
    DESCRIPTION = "Decode a clip's latents with temporal layers and CFW fusion when the VAE has them."

    def decode(self, latent, vae, fusion_weight, window, window_overlap, tile_latent, tile_overlap_latent,
               upscaled=None, free_memory_after=True):
        samples = latent_samples(latent)
        if is_core_vae(vae):
            return (core_vae_decode(vae, samples),)
        settings = DecodeSettings(fusion_weight, window, window_overlap, tile_latent, tile_overlap_latent)
        lr = thwc_to_tchw(check_image_batch(upscaled, "upscaled")) if upscaled is not None else None
        with on_compute_device(vae, free_memory_after):
            frames = api.temporal_decode(vae, samples, settings, lr, latent.get("vsr_size"), make_reporter())
        return (tchw_to_thwc(frames).contiguous(),)


NODE_CLASS_MAPPINGS = {"VSR_GuidedSample": VSR_GuidedSample, "VSR_TemporalDecode": VSR_TemporalDecode}
NODE_DISPLAY_NAME_MAPPINGS = {"VSR_GuidedSample": "Guided Sample (VSR)", "VSR_TemporalDecode": "Temporal Decode (VSR)"}
