"""Conversions between ComfyUI's types and vsr_core's (no math beyond layout and dtype)."""
from __future__ import annotations

import os

import numpy as np
import torch

from vsr_core.api import (AudioClip, AudioSegment, AudioStreamRef, InputError, decode_audio, float_to_uint8,
                          uint8_to_float)


def frames_to_image(frames: np.ndarray) -> torch.Tensor:
    """uint8 [T,H,W,3] -> ComfyUI IMAGE float [T,H,W,3] in 0..1."""
    return uint8_to_float(frames)


def image_windows(images: torch.Tensor, size: int = 16, what: str = "frames"):
    """ComfyUI IMAGE -> uint8 [n,H,W,3] windows, so a whole float copy is never made."""
    for i in range(0, images.shape[0], size):
        yield float_to_uint8(images[i:i + size], what, first_index=i)


def core_video_path(video) -> str | None:
    """The file behind a core VIDEO (None when it is held in memory), so it can be streamed."""
    getter = getattr(video, "get_stream_source", None)
    source = getter() if getter else None
    return source if isinstance(source, str) and os.path.exists(source) else None


def audio_to_comfy(audio) -> dict | None:
    """vsr_core audio -> ComfyUI AUDIO {"waveform": [1,C,S] float, "sample_rate": int}."""
    if audio is None:
        return None
    clip = audio if isinstance(audio, AudioClip) else decode_audio(audio)
    return {"waveform": torch.from_numpy(clip.waveform).unsqueeze(0), "sample_rate": clip.sample_rate}


def audio_from_comfy(audio, name: str = "audio") -> AudioClip | None:
    """ComfyUI AUDIO -> AudioClip (the first item of a batch)."""
    if audio is None:
        return None
    if isinstance(audio, (AudioClip, AudioSegment, AudioStreamRef)):
        return audio
    if not isinstance(audio, dict) or "waveform" not in audio or "sample_rate" not in audio:
        raise InputError(f"{name} is a {type(audio).__name__}; expected ComfyUI AUDIO "
                         f"{{'waveform': [batch,channels,samples], 'sample_rate': int}}")
    wave, rate = audio["waveform"], audio["sample_rate"]
    try:
        wave = wave.detach().cpu().float().numpy() if isinstance(wave, torch.Tensor) else np.asarray(wave, np.float32)
    except (TypeError, ValueError) as err:
        raise InputError(f"{name} waveform is a {type(wave).__name__} ({err}); expected a float tensor "
                         f"[batch,channels,samples]") from None
    if wave.ndim == 3:
        wave = wave[0]
    if isinstance(rate, float) and rate.is_integer():
        rate = int(rate)        # AudioClip names any other non-integer rate (NaN included)
    return AudioClip(wave, rate)


def latent_samples(latent, name: str = "latent") -> torch.Tensor:
    """The [frames,4,h,w] tensor of a ComfyUI LATENT {"samples": ...}, or an InputError naming what came instead."""
    if not isinstance(latent, dict) or "samples" not in latent:
        keys = f" with keys {sorted(map(str, latent))[:6]}" if isinstance(latent, dict) else ""
        raise InputError(f"{name} is a {type(latent).__name__}{keys}; expected a ComfyUI LATENT "
                         f"{{'samples': [frames,channels,h,w]}}")
    samples = latent["samples"]
    if not isinstance(samples, torch.Tensor) or samples.dim() != 4 or not samples.is_floating_point():
        shape = tuple(samples.shape) if isinstance(samples, torch.Tensor) else type(samples).__name__
        raise InputError(f"{name}['samples'] is {shape}; expected a float tensor [frames,channels,h,w]")
    return samples
