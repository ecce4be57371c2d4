"""Choose the upscaler's tile and window before the first frame, so the job fits the memory that is free.

The peak is estimated from the frame size, the scale, the window and the tile
(coefficients measured with benchmarks/bench_memory_plan.py, which prints the
estimate beside the measured peak RSS):

- a fixed part (Python, torch, the model): FIXED_BYTES;
- what grows with the output frame but not with the window (the h264
  encoder's look-ahead and reference frames, the crossfade tail, 8-bit
  copies, the allocator's fragmentation): PER_OUTPUT_PIXEL bytes per output
  pixel. Up to 720p output the measured peaks imply about 300; a 1080p -> 8K
  run was still growing past 550 when the kernel killed it at 21.9 GB (frame
  18 of 24), so the plan uses 700 and over-estimates smaller outputs (1.2-2.3x)
  rather than under-estimate large ones;
- the window's output frames (float32, the tile blend's sums): PER_WINDOW_OUTPUT_PIXEL
  bytes per output pixel and window frame;
- the network's activations: PER_TILE_PIXEL bytes per LR pixel of one tile and window frame.

On a GPU the activations are counted against its free memory and the rest
against RAM. Settings shrink along LADDER (tile first down to 128, where
the tiles' overlap still costs little, then the window, then the smallest
tile) until the estimate fits BUDGET_SHARE of what is free. Outputs beyond
8K are refused outright: they would take hours and tens of GB whatever the
settings.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import InputError
from ..machine import ram_bytes
from .memory_fallback import OutOfMemory

MB = 1 << 20
FIXED_BYTES = 600 * MB
PER_OUTPUT_PIXEL = 700      # measured: 1080p -> 8K (tile 128, window 8) passed 21.9 GB by frame 18 of 24
PER_WINDOW_OUTPUT_PIXEL = 16
PER_TILE_PIXEL = 1250
BUDGET_SHARE = 0.7            # of the free memory: room for the allocator, other programs, estimate error
MAX_OUTPUT = (7680, 4320)     # 8K UHD, either orientation
MIN_TILE, MIN_WINDOW = 64, 2
CLI_FLAGS = ("--tile-px", "--window", "--scale")   # how the command line names tile, window and scale


@dataclass(frozen=True)
class FreeMemory:
    """Bytes free for the job: RAM, and on a GPU its memory (None: the model runs on the CPU)."""

    ram: int
    device: int | None = None

    @staticmethod
    def of(device: torch.device | str = "cpu") -> "FreeMemory":
        """What is free now: MemAvailable, and torch.cuda.mem_get_info (plus torch's own cached blocks) on CUDA."""
        device = torch.device(device)
        ram = ram_bytes()[0]
        if device.type == "cuda":
            free, _total = torch.cuda.mem_get_info(device)
            return FreeMemory(ram, free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))
        return FreeMemory(ram, None)


@dataclass(frozen=True)
class UpscalePlan:
    tile: int               # LR pixels per tile side (the frame's longer side when untiled)
    window: int
    overlap: int
    ram: int                # estimated peak bytes of RAM
    device: int | None      # estimated peak bytes of GPU memory (None: on the CPU)
    free: FreeMemory

    def describe(self, tile: int, window: int, flags: tuple[str, ...] = CLI_FLAGS) -> str:
        """One line: what was chosen and why, for the log."""
        gb = 1 << 30
        need = f"about {self.ram / gb:.1f} GB of {self.free.ram / gb:.1f} GB free RAM"
        if self.device is not None:
            need += f", {self.device / gb:.1f} GB of {self.free.device / gb:.1f} GB free GPU memory"
        changed = [f"{flag} {a} -> {b}" for flag, a, b in zip(flags, (tile, window), (self.tile, self.window))
                   if a != b]
        if changed:
            return f"memory: {', '.join(changed)} so the job fits ({need})"
        return f"memory: {flags[0]} {self.tile}, {flags[1]} {self.window} ({need})"


def output_size(height: int, width: int, scale: int) -> tuple[int, int]:
    return height * scale, width * scale


def check_output_size(height: int, width: int, scale: int, flags: tuple[str, ...] = CLI_FLAGS) -> None:
    """Refuse an output larger than 8K (7680x4320, either way round) with what to pass instead."""
    oh, ow = output_size(height, width, scale)
    if max(oh, ow) <= MAX_OUTPUT[0] and min(oh, ow) <= MAX_OUTPUT[1]:
        return
    fits = [s for s in (2,) if s < scale and max(height, width) * s <= MAX_OUTPUT[0]
            and min(height, width) * s <= MAX_OUTPUT[1]]
    instead = (f"use {flags[2]} {fits[0]} ({width * fits[0]}x{height * fits[0]})" if fits else
               f"downscale the input to at most {MAX_OUTPUT[0] // scale}x{MAX_OUTPUT[1] // scale} first")
    raise InputError(f"a {width}x{height} input at x{scale} makes {ow}x{oh} frames, larger than 8K "
                     f"({MAX_OUTPUT[0]}x{MAX_OUTPUT[1]}); {instead}")


def output_batch_bytes(frames: torch.Tensor, scale: int) -> int:
    """RAM of a whole clip's result held at once (the Upscale node's IMAGE batch): the float32 frames and
    their channels-last copy."""
    t, c, h, w = frames.shape
    return 2 * t * c * h * w * scale * scale * 4


def estimate(height: int, width: int, scale: int, window: int, tile: int, learned: bool = True,
             on_gpu: bool = False, extra_ram: int = 0) -> tuple[int, int | None]:
    """(peak RAM bytes, peak GPU bytes or None) of upscaling height x width frames by `scale`."""
    out_px = height * width * scale * scale
    tile_px = min(tile or max(height, width), height) * min(tile or max(height, width), width)
    activations = window * PER_TILE_PIXEL * tile_px if learned else 0
    ram = FIXED_BYTES + PER_OUTPUT_PIXEL * out_px + window * PER_WINDOW_OUTPUT_PIXEL * out_px + extra_ram
    if on_gpu:
        return ram, activations
    return ram + activations, None


def ladder(tile: int, window: int, longer_side: int) -> list[tuple[int, int]]:
    """(tile, window) settings from the requested ones down to the smallest, in the order tried."""
    tile = min(tile or longer_side, longer_side)
    tiles = [t for t in (tile, 256, 128) if t <= tile]
    windows = [w for w in (window, 8, 6, 4) if w <= window]
    steps = [(t, window) for t in dict.fromkeys(tiles)]
    steps += [(tiles[-1], w) for w in dict.fromkeys(windows)]
    small = min(tile, MIN_TILE)
    steps += [(small, w) for w in dict.fromkeys(windows[-1:] + [min(window, MIN_WINDOW)])]
    return list(dict.fromkeys(steps))


def plan_upscale(height: int, width: int, scale: int, window: int, overlap: int, tile: int,
                 free: FreeMemory, learned: bool = True, extra_ram: int = 0,
                 flags: tuple[str, ...] = CLI_FLAGS) -> UpscalePlan:
    """The largest settings, down the ladder from the requested ones, whose estimate fits BUDGET_SHARE of
    `free`; an OutOfMemory error that says how much is needed and free when even the smallest does not.
    ``free.ram`` 0 (unknown) keeps the requested settings. ``flags``: how the caller names tile, window, scale."""
    check_output_size(height, width, scale, flags)
    on_gpu = free.device is not None
    steps = ladder(tile, window, max(height, width)) if learned else \
        [(tile, w) for w in dict.fromkeys([window] + [w for w in (8, 4, 2, 1) if w < window])]
    for t, w in steps:
        ram, dev = estimate(height, width, scale, w, t, learned, on_gpu, extra_ram)
        fits = free.ram <= 0 or (ram <= BUDGET_SHARE * free.ram
                                 and (dev is None or dev <= BUDGET_SHARE * free.device))
        if fits:
            t = tile if t == steps[0][0] else t       # the requested tile (or 0) where it was not shrunk
            return UpscalePlan(t, w, overlap if w == window else min(overlap, (w - 1) // 2), ram, dev, free)
    gb = 1 << 30
    where = (f"{dev / gb:.1f} GB of GPU memory ({free.device / gb:.1f} GB free)" if on_gpu
             and dev > BUDGET_SHARE * free.device else f"{ram / gb:.1f} GB of RAM ({free.ram / gb:.1f} GB free)")
    instead = f"use {flags[2]} 2 or " if scale == 4 else ""
    raise OutOfMemory(f"{width}x{height} at x{scale} needs about {where} even with {flags[0]} {t} {flags[1]} "
                      f"{w}; free memory, or {instead}downscale the input first")
