"""The fast path's windows on a Ray cluster: `upscale --workers N [--ray-address ADDRESS]`.

Each worker is a Ray actor that loads the upscaler once and turns a window of
LR frames (shipped as uint8) into upscaled float frames, with its own flow
and thread settings; the driver reads the input, keeps at most a few windows
in flight, crossfades and writes them strictly in order through the same
resumable cache as the single-process job. A window depends only on its own
frames, so the output is identical for any number of workers. A worker that
dies is restarted and its window retried (Ray's actor restarts and task
retries). Ray is optional: `pip install "ray[default]"`.
"""
from __future__ import annotations

import numpy as np
import torch

from ..errors import InputError


def import_ray():
    try:
        import ray
    except ImportError:
        raise InputError('--workers needs Ray, which is optional: pip install "ray[default]"') from None
    return ray


class WindowWorker:
    """One model per worker process; `run` upscales one window (the body of the single-process job's)."""

    def __init__(self, weights_path: str, scale: int, temporal: bool, tile: int, precision: str, threads: int):
        from ..flow.dis import DISFlow
        from ..flow.pairs import PairFlows
        from ..machine import tune_allocator
        from ..weights import load_upscaler
        torch.set_num_threads(max(1, threads))
        tune_allocator()
        self.model = load_upscaler(weights_path)
        self.scale, self.temporal, self.tile, self.precision = scale, temporal, tile, precision
        self.flows = PairFlows(DISFlow("medium"))

    def pid(self) -> int:
        import os
        return os.getpid()

    @torch.inference_mode()
    def run(self, lr_uint8: np.ndarray, first_frame: int) -> np.ndarray:
        from ..upscale_video import TILE_OVERLAP_LR_PX, upscale_window, window_tiles
        lr = torch.from_numpy(lr_uint8).permute(0, 3, 1, 2).float().div_(255)
        tiles = window_tiles(self.tile, TILE_OVERLAP_LR_PX, lr)
        return upscale_window(lr, first_frame, self.model, self.flows, self.temporal, tiles, self.precision,
                              self.scale).numpy()


class RayPool:
    """N WindowWorker actors on a local or existing Ray cluster, handing out windows round robin."""

    def __init__(self, workers: int, address: str | None, weights_path: str, scale: int, temporal: bool,
                 tile: int, precision: str, threads: int):
        if not isinstance(workers, int) or workers < 1:
            raise InputError(f"workers={workers!r}; expected an integer >= 1")
        ray = import_ray()
        self.ray = ray
        self.started = not ray.is_initialized()
        if self.started:
            ray.init(address=address, include_dashboard=False, log_to_driver=False,
                     **({} if address else {"num_cpus": max(workers * threads, 1)}))
        gpus = 1 if torch.cuda.is_available() else 0
        actor = ray.remote(num_cpus=threads, num_gpus=gpus, max_restarts=-1, max_task_retries=-1)(WindowWorker)
        self.actors = [actor.remote(weights_path, scale, temporal, tile, precision, threads)
                       for _ in range(workers)]
        self.next = 0

    def submit(self, segment):
        """Start one window (a pipeline.segments.SegmentInput) on the next worker; returns its handle."""
        lr = (segment.lr.permute(0, 2, 3, 1) * 255).round().to(torch.uint8).numpy()
        actor = self.actors[self.next % len(self.actors)]
        self.next += 1
        return actor.run.remote(lr, segment.first_frame)

    def collect(self, handle) -> torch.Tensor:
        return torch.from_numpy(np.array(self.ray.get(handle)))     # Ray hands back read-only arrays

    def close(self) -> None:
        for a in self.actors:
            self.ray.kill(a)
        if self.started:
            self.ray.shutdown()
