"""Out-of-memory fallback: which errors count, how settings shrink, what the user is told."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pytest
import torch

from vsr_core.pipeline.memory_fallback import OutOfMemory, changes, is_out_of_memory, retry_on_oom
from vsr_core.pipeline.restore_video import RestoreSettings, shrink
from vsr_core.progress import Reporter


class Log(Reporter):
    def __init__(self):
        self.messages = []

    def log(self, message):
        self.messages.append(message)


def test_which_errors_are_out_of_memory():
    assert is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert is_out_of_memory(RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: "
                                         "can't allocate memory: you tried to allocate 9663676416 bytes."))
    assert is_out_of_memory(RuntimeError("MPS backend out of memory (MPS allocated: 17.00 GB)"))
    assert is_out_of_memory(MemoryError())
    assert not is_out_of_memory(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))
    assert not is_out_of_memory(ValueError("out of memory"))
    assert not is_out_of_memory(OutOfMemory("already handled"))


@dataclass(frozen=True)
class Tiles:
    tile: int = 64
    window: int = 5


def halve_tile(s):
    return dataclasses.replace(s, tile=s.tile // 2) if s.tile > 16 else None


def test_retry_shrinks_until_it_fits_and_says_so():
    tried = []

    def run(s):
        tried.append(s.tile)
        if s.tile > 16:
            raise torch.OutOfMemoryError("CUDA out of memory")
        return "done"

    log = Log()
    result, used = retry_on_oom(run, Tiles(), halve_tile, "Guided Sample", log)
    assert (result, used, tried) == ("done", Tiles(tile=16), [64, 32, 16])
    assert len(log.messages) == 2 and "Guided Sample: out of memory" in log.messages[0]
    assert "tile 64 -> 32" in log.messages[0] and "tile 32 -> 16" in log.messages[1]


def test_retry_gives_up_with_a_clear_error_and_passes_other_errors_through():
    def always(s):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory")
    with pytest.raises(OutOfMemory, match="segment at frame 32 ran out of memory even at the smallest"):
        retry_on_oom(always, Tiles(), halve_tile, "segment at frame 32")

    def broken(s):
        raise KeyError("not memory")
    with pytest.raises(KeyError):
        retry_on_oom(broken, Tiles(), halve_tile, "x")


def test_restore_settings_shrink_tiles_first_then_windows_and_stop():
    s = RestoreSettings()
    chain = [s]
    while (smaller := shrink(chain[-1])) is not None:
        chain.append(smaller)
        assert len(chain) < 20
    assert chain[1].sample.tile_latent == 32 and chain[1].decode.tile_latent == 32 and chain[1].upscale_tile_px == 256
    assert chain[1].sample.window == s.sample.window
    last = chain[-1]
    assert last.sample.tile_latent == 16 and last.decode.tile_latent == 16 and last.tile_latent == 16
    assert last.upscale_tile_px == 64
    assert last.sample.window == 3 > last.segment_overlap and last.decode.window == 2
    assert last.segment == s.segment and last.segment_overlap == s.segment_overlap  # the segment plan never moves
    for a, b in zip(chain, chain[1:]):
        assert changes(a, b)
