"""Checkpoint reading, format detection and model loading.

    from vsr_core import load_model
    unet = load_model("v2-1_512-ema-pruned.safetensors", kind="unet", dtype="fp16")
    vae = load_model("vqgan_cfw_00011.ckpt", kind="vae")

See loader.py for the return types and formats.py for the formats detected.
"""
from .formats import (CheckpointContents, infer_struct_encoder_config, infer_unet_config,
                      split_components)
from .io import read_checkpoint, write_safetensors
from .loader import (build_struct_encoder, build_unet, check_state_dict, load_checkpoint_contents,
                     load_components, load_model, parameter_summary, save_model)

__all__ = ["load_model", "load_components", "save_model", "read_checkpoint", "write_safetensors", "split_components",
           "CheckpointContents", "infer_unet_config", "infer_struct_encoder_config",
           "build_unet", "build_struct_encoder", "check_state_dict", "load_checkpoint_contents",
           "parameter_summary"]
