"""`python -m vsr_core inspect CHECKPOINT`: what a checkpoint holds.

Prints the detected format, each component (tensor and parameter counts,
dtypes, the config inferred from its shapes) and whether its keys and shapes
match the module we would build. Nothing is loaded beyond reading the file;
modules are built on the meta device only.
"""
from __future__ import annotations

import json
import os
from collections import Counter


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "inspect", help="show the format, components and configs of a checkpoint",
        description="Detect a checkpoint's format (SD 2.x, StableSR, MGLD-VSR, VAE/CFW, the "
                    "pack's own) from its keys and print what the loader would build.")
    p.add_argument("checkpoint", help=".safetensors, or .ckpt/.pth (read with weights_only=True)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.set_defaults(func=run)


def _tensor_stats(sd: dict) -> dict:
    dtypes = Counter(str(v.dtype).replace("torch.", "") for v in sd.values())
    return {"tensors": len(sd), "parameters": int(sum(v.numel() for v in sd.values())),
            "dtypes": dict(dtypes)}


def _check(build, sd: dict) -> str:
    from ..errors import CheckpointError
    try:
        build(sd)
    except CheckpointError as e:
        return "MISMATCH\n" + str(e)
    return "OK (every key and shape matches)"


def describe(path: str) -> dict:
    import torch

    from ..checkpoints.formats import infer_struct_encoder_config, infer_unet_config
    from ..checkpoints.loader import check_state_dict, load_checkpoint_contents
    from ..errors import CheckpointError
    from ..models.sft import EncoderUNetModelWT
    from ..models.unet import UNetModel

    c = load_checkpoint_contents(path)
    info = {"file": path, "size_bytes": os.path.getsize(path), "format": c.format,
            "components": {}, "ignored_keys": len(c.ignored), "unknown_keys": c.unknown[:50]}
    if c.metadata:
        info["metadata"] = {k: v for k, v in c.metadata.items() if not k.endswith("_config")}
    for name, sd in c.components.items():
        entry = _tensor_stats(sd)
        try:
            if name == "unet":
                saved = c.meta_json("vsr_core.unet_config")
                from ..models.unet import UNetConfig
                cfg = UNetConfig.from_dict(saved) if saved else infer_unet_config(sd)
                entry["config"] = cfg.to_dict()
                entry["variant"] = ("MGLD-VSR (SFT + temporal middle)" if cfg.temporal_middle
                                    else "StableSR (SFT)" if cfg.sft else
                                    "SD 2.x" if cfg.use_linear_in_transformer else "SD 1.x")
                if cfg.sfa_tfa:
                    entry["variant"] += " + SATeCo SFA/TFA"
                if not saved:
                    entry["not_in_weights"] = ("prediction (eps assumed; SD 2.x 768-v needs "
                                               "overrides={'prediction': 'v'}), attention heads")

                def build(sd, cfg=cfg):
                    with torch.device("meta"):
                        check_state_dict(UNetModel(cfg), sd, f"{path} [unet]")
                entry["layout"] = _check(build, sd)
            elif name == "struct_encoder":
                from ..models.sft import StructEncoderConfig
                saved = c.meta_json("vsr_core.struct_encoder_config")  # heads are not in the weights
                cfg = StructEncoderConfig.from_dict(saved) if saved else infer_struct_encoder_config(sd)
                entry["config"] = cfg.to_dict()

                def build(sd, cfg=cfg):
                    with torch.device("meta"):
                        check_state_dict(EncoderUNetModelWT(cfg), sd, f"{path} [struct_encoder]")
                entry["layout"] = _check(build, sd)
            elif name == "vae":
                try:
                    from ..checkpoints.vae_format import detect_vae_format
                    entry["variant"] = detect_vae_format(sd.keys())
                except ImportError:
                    entry["variant"] = "unknown (VAE module not available)"
        except CheckpointError as e:
            entry["layout"] = "MISMATCH\n" + str(e)
        info["components"][name] = entry
    return info


def _fmt_config(cfg: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in cfg.items())


def run(args) -> int:
    info = describe(args.checkpoint)
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    print(f"file:    {info['file']} ({info['size_bytes']:,} bytes)")
    print(f"format:  {info['format']}")
    for name, e in info["components"].items():
        dt = ", ".join(f"{k} x{v}" for k, v in e["dtypes"].items())
        print(f"\n[{name}] {e['tensors']} tensors, {e['parameters']:,} parameters ({dt})")
        if "variant" in e:
            print(f"  variant: {e['variant']}")
        if "config" in e:
            print(f"  config:  {_fmt_config(e['config'])}")
        if "not_in_weights" in e:
            print(f"  not in the weights: {e['not_in_weights']}")
        if "layout" in e:
            print("  layout:  " + e["layout"].replace("\n", "\n  "))
    if info["ignored_keys"]:
        print(f"\nignored: {info['ignored_keys']} training-only keys (EMA copy, schedule buffers, losses)")
    if info["unknown_keys"]:
        print(f"unknown: {len(info['unknown_keys'])} keys not used, e.g. {info['unknown_keys'][:5]}")
    bad = any(e.get("layout", "").startswith("MISMATCH") for e in info["components"].values())
    return 1 if bad else 0
