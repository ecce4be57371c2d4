"""Guided Sample and Temporal Decode: the diffusion stages."""
from __future__ import annotations

import dataclasses

from vsr_core.diffusion.model import DiffusionModel
from vsr_core.diffusion.motion_guidance import RULES, MotionGuidance
from vsr_core.errors import InputError
from vsr_core.ops.frames import check_image_batch, tchw_to_thwc, thwc_to_tchw
from vsr_core.diffusion.samplers import SAMPLERS, describe_samplers
from vsr_core.pipeline.guided_sample import SampleSettings, guided_sample
from vsr_core.pipeline.memory_fallback import retry_on_oom, smaller_pieces
from vsr_core.pipeline.vae_codec import decode_latents, encode_frames

from .comfy_bridge import (context_from_conditioning, core_model_denoiser, core_vae_decode, core_vae_encode,
                           is_core_model, is_core_vae, make_reporter, on_compute_device)
from .convert import latent_samples

CATEGORY = "video super-resolution/diffusion"


def _encode(vae, images, reporter):
    if is_core_vae(vae):
        return core_vae_encode(vae, images)
    return encode_frames(vae, thwc_to_tchw(images), reporter=reporter)


class VSR_GuidedSample:
    """Motion-guided latent diffusion over the whole clip, in temporal windows and latent tiles."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": ("VSR_DIFFUSION,MODEL", {"tooltip":
                          "From Load Diffusion Model (VSR), or any SD-family MODEL from ComfyUI's loaders."}),
                "steps": ("INT", {"default": 50, "min": 1, "max": 1000, "tooltip":
                                  "Sampling steps (respaced from 1000; MGLD-VSR uses 50)."}),
                "seed": ("INT", {"default": 0, "min": 0, "max": 0xFFFFFFFFFFFFFFFF, "tooltip":
                                 "Noise seed; noise depends only on (seed, frame, step), so windows and tiles "
                                 "do not change it."}),
                "sampler": (list(SAMPLERS), {"default": "ddpm", "tooltip": describe_samplers()}),
                "guidance_scale": ("FLOAT", {"default": 10.0, "min": 0.0, "max": 1000.0, "step": 0.1, "tooltip":
                                             "Motion guidance strength (MGLD-VSR: 10; 0 turns it off)."}),
                "guidance_rule": (list(RULES), {"default": "log_variance", "tooltip":
                                                "log_variance: MGLD-VSR code's step; variance: the paper's."}),
                "mgld_flow_offset": ("BOOLEAN", {"default": False, "tooltip":
                                                 "Reproduce the MGLD-VSR code's one-frame flow offset exactly."}),
                "guidance_start": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.01, "tooltip":
                                             "Fraction of the run where guidance starts (0: first step)."}),
                "guidance_end": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01, "tooltip":
                                           "Fraction of the run where guidance ends (1: last step)."}),
                "guide_through_network": ("BOOLEAN", {"default": False, "tooltip":
                                           "Take the warping loss on the model's clean prediction and backpropagate "
                                           "through the UNet (slower, about 2x); off follows MGLD-VSR."}),
                "window": ("INT", {"default": 5, "min": 1, "max": 64, "tooltip":
                                   "Frames sampled together (temporal layers see this many)."}),
                "window_overlap": ("INT", {"default": 1, "min": 0, "max": 63, "tooltip":
                                           "Frames shared by neighbouring windows, crossfaded."}),
                "tile_latent": ("INT", {"default": 64, "min": 8, "max": 512, "step": 8, "tooltip":
                                        "Tile size in latent cells (x8 pixels for SD's VAE); StableSR uses 64."}),
                "tile_overlap_latent": ("INT", {"default": 32, "min": 0, "max": 256, "step": 8, "tooltip":
                                         "Latent tile overlap, Gaussian-weighted."}),
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
    RENAMED_INPUTS = {"reference_offset": "mgld_flow_offset", "guidance_through_model": "guide_through_network",
                      "tile": "tile_latent", "tile_overlap": "tile_overlap_latent",
                      "offload_after": "free_memory_after"}
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
        reporter = make_reporter()
        context = context_from_conditioning(conditioning) if conditioning is not None else None
        if is_core_model(model):
            if context is None:
                raise InputError("a core MODEL needs `conditioning` (e.g. CLIP Text Encode with an empty "
                                 "prompt); only the pack's loader computes the empty prompt itself")
            model = core_model_denoiser(model, context)
        elif isinstance(model, DiffusionModel):
            if context is not None:
                model = DiffusionModel(model.unet, context, model.prediction, model.betas, model.latent_scale)
        else:
            raise InputError(f"model is a {type(model).__name__}; expected VSR_DIFFUSION or a ComfyUI MODEL")
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
        settings = SampleSettings(
            steps=steps, sampler=sampler, seed=seed, window=window, window_overlap=window_overlap,
            tile_latent=tile_latent, tile_overlap_latent=tile_overlap_latent,
            guidance=MotionGuidance(scale=guidance_scale, rule=guidance_rule, reference_offset=mgld_flow_offset,
                                    start=guidance_start, end=guidance_end, through_model=guide_through_network))
        scaled = samples.float() * model.latent_scale

        def attempt(pieces):
            return guided_sample(scaled, model, dataclasses.replace(settings, **pieces), flow=flow, reporter=reporter)

        pieces = dict(tile_latent=tile_latent, tile_overlap_latent=tile_overlap_latent, window=window,
                      window_overlap=window_overlap)
        with on_compute_device(getattr(model, "unet", None), free_memory_after):
            out, _ = retry_on_oom(attempt, pieces, smaller_pieces, "Guided Sample", reporter)
        return ({"samples": out / model.latent_scale, **extra},)


class VSR_TemporalDecode:
    """Latents -> frames with MGLD's temporal decoder / StableSR's CFW, or any VAE."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "latent": ("LATENT", {"tooltip": "From Guided Sample (or any image LATENT)."}),
                "vae": ("VSR_VAE,VAE", {"tooltip": "A temporal/CFW VAE from Load VAE (VSR), or any ComfyUI VAE "
                                        "(then decoded frame by frame)."}),
                "fusion_weight": ("FLOAT", {"default": -1.0, "min": -1.0, "max": 2.0, "step": 0.05, "tooltip":
                                       "CFW fidelity weight: 0 = generated detail, higher = closer to the input "
                                       "(StableSR 0.5, MGLD-VSR 1.0; -1 uses the model's default)."}),
                "window": ("INT", {"default": 5, "min": 1, "max": 64, "tooltip":
                                   "Frames decoded together by a temporal decoder."}),
                "window_overlap": ("INT", {"default": 1, "min": 0, "max": 63, "tooltip":
                                           "Frames shared by neighbouring windows, crossfaded."}),
                "tile_latent": ("INT", {"default": 64, "min": 8, "max": 512, "step": 8, "tooltip":
                                        "Tile size for decoding, in latent cells (x8 pixels)."}),
                "tile_overlap_latent": ("INT", {"default": 16, "min": 0, "max": 256, "step": 4, "tooltip":
                                                "Tile overlap in latent cells."}),
            },
            "optional": {
                "upscaled": ("IMAGE", {"tooltip": "The upscaled frames the latent came from: CFW fuses their "
                                       "features, and the output is cropped to their size."}),
                "free_memory_after": ("BOOLEAN", {"default": True, "tooltip":
                                  "Move the pack's VAE back to system RAM when done (off: keep it loaded)."}),
            },
        }

    # inputs renamed for readability (old name -> new); the runner maps prompts saved with the old names
    RENAMED_INPUTS = {"fusion_w": "fusion_weight", "tile": "tile_latent", "tile_overlap": "tile_overlap_latent",
                      "offload_after": "free_memory_after"}
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
        lr = thwc_to_tchw(check_image_batch(upscaled, "upscaled")) if upscaled is not None else None
        reporter = make_reporter()

        def attempt(pieces):
            return decode_latents(vae, samples, upscaled=lr, w=None if fusion_weight < 0 else fusion_weight,
                                  size=latent.get("vsr_size"), reporter=reporter, **pieces)

        pieces = dict(tile_latent=tile_latent, tile_overlap_latent=tile_overlap_latent, window=window,
                      window_overlap=window_overlap)
        with on_compute_device(vae, free_memory_after):
            frames, _ = retry_on_oom(attempt, pieces, smaller_pieces, "Temporal Decode", reporter)
        return (tchw_to_thwc(frames).contiguous(),)


NODE_CLASS_MAPPINGS = {"VSR_GuidedSample": VSR_GuidedSample, "VSR_TemporalDecode": VSR_TemporalDecode}
NODE_DISPLAY_NAME_MAPPINGS = {"VSR_GuidedSample": "Guided Sample (VSR)", "VSR_TemporalDecode": "Temporal Decode (VSR)"}
