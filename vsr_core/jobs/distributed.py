"""Segments on a Ray cluster: `upscale --workers N` and `restore --workers N` [--ray-address ADDRESS].

Each worker is a Ray actor that loads its models once and turns a segment of
LR frames (shipped as uint8) into output float frames, with its own flow,
thread and device settings: `WindowWorker` runs the fast path's window,
`SegmentWorker` the whole diffusion graph (restore, with independent seams).
The driver reads the input, keeps at most a few segments in flight,
crossfades and writes them strictly in order through the same resumable
cache as the single-process job. A segment depends only on its own frames,
so the output is identical for any number of workers. A worker that dies is
restarted and its segment retried (Ray's actor restarts and task retries).
Ray is optional: `pip install "ray[default]"`.
"""
from __future__ import annotations

import socket

import numpy as np
import torch

from ..errors import InputError
from . import ray_watchdog


def import_ray():
    try:
        import ray
    except ImportError:
        raise InputError('--workers needs Ray, which is optional: pip install "ray[default]"') from None
    return ray


PROBE_TIMEOUT_S = 3


def resolve_ray_address(address: str | None) -> str | None:
    """The HOST:PORT of the running cluster `address` names (None: start a local one), checked in seconds.

    Ray itself retries an address where nothing listens for minutes and raises
    tracebacks for a malformed one or for 'auto' with no cluster; here each is
    one line, before any work starts.
    """
    if address is None or address == "local":
        return None
    expected = ("expected HOST:PORT of a running Ray cluster (`ray start --head` prints it), 'auto' for the one "
                "on this machine, or no --ray-address to start a local one")
    if not isinstance(address, str) or not address.strip():
        raise InputError(f"--ray-address {address!r}: is empty; {expected}")
    import_ray()
    from ray._private.services import canonicalize_bootstrap_address
    client = address.startswith("ray://")      # Ray Client: ray.init names a missing ray[client]
    try:
        resolved = address[len("ray://"):] if client else canonicalize_bootstrap_address(address)
    except (ValueError, ConnectionError, OSError) as err:
        raise InputError(f"--ray-address {address!r}: {str(err).splitlines()[0]}; {expected}") from None
    if resolved is None:
        return None
    host, _, port = resolved.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=PROBE_TIMEOUT_S):
            pass
    except (OSError, ValueError) as err:
        reason = getattr(err, "strerror", None) or str(err) or type(err).__name__
        raise InputError(f"--ray-address {address!r}: no Ray cluster answers at {resolved} ({reason}); "
                         f"{expected}") from None
    return address if client else resolved


class WindowWorker:
    """One model per worker process; `run` upscales one window (the body of the single-process job's)."""

    def __init__(self, weights_path: str, settings, threads: int):
        from ..flow.dis import DISFlow
        from ..flow.pairs import PairFlows
        from ..machine import tune_allocator
        from ..checkpoints.shipped import load_upscaler
        from ..models.upscaler import FLOW_PRESET
        torch.set_num_threads(max(1, threads))
        tune_allocator()
        self.model = load_upscaler(weights_path)
        self.settings = settings           # the job's UpscaleSettings, tile and window as planned
        self.flows = PairFlows(DISFlow(FLOW_PRESET))     # the single-process job's flow

    def pid(self) -> int:
        import os
        return os.getpid()

    @torch.inference_mode()
    def run(self, lr_uint8: np.ndarray, first_frame: int, level: list | None = None) -> np.ndarray:
        from ..pipeline.upscale import upscale_window, window_tiles
        s = self.settings
        lr = torch.from_numpy(lr_uint8).permute(0, 3, 1, 2).float().div_(255)
        tiles = window_tiles(s.upscaler_tile_px, s.tile_overlap_px, lr)
        level = None if level is None else torch.tensor(level)
        return upscale_window(lr, first_frame, self.model, self.flows, s.temporal, tiles, s.precision,
                              s.scale, level=level).numpy()


class SegmentWorker:
    """The restore graph's models on one worker (one GPU where there are GPUs); `run` restores one segment."""

    def __init__(self, load: dict, settings, threads: int):
        from ..machine import tune_allocator
        from ..checkpoints.restore_models import load_restore_models
        torch.set_num_threads(max(1, threads))
        tune_allocator()
        self.models = load_restore_models(settings.scale, **load)
        self.settings = settings

    def pid(self) -> int:
        import os
        return os.getpid()

    def run(self, lr_uint8: np.ndarray, first_frame: int, level=None) -> np.ndarray:
        from ..pipeline.restore_video import restore_segment_fitting
        lr = torch.from_numpy(lr_uint8).permute(0, 3, 1, 2).float().div_(255)
        (out, _), self.settings = restore_segment_fitting(lr, None, self.models, self.settings, {}, first_frame,
                                                          None)
        return out.cpu().numpy()


class RayPool:
    """N actors of `worker` (a class above, built with `args`) on a local or existing Ray cluster,
    handing out segments round robin."""

    def __init__(self, workers: int, address: str | None, worker: type, args: tuple, threads: int):
        if not isinstance(workers, int) or workers < 1:
            raise InputError(f"workers={workers!r}; expected an integer >= 1")
        ray = import_ray()
        self.ray = ray
        self.started = not ray.is_initialized()
        self.watchdog = None
        if self.started:
            address = resolve_ray_address(address)
            if address is None:       # a local cluster ends with this process, even one killed with SIGKILL
                self.watchdog = ray_watchdog.start()
            try:
                ray.init(address=address, include_dashboard=False, log_to_driver=False,
                         **({} if address else {"num_cpus": max(workers * threads, 1)}))
            except (ConnectionError, ValueError, RuntimeError, TimeoutError) as err:
                ray_watchdog.stop(self.watchdog)
                raise InputError(f"cannot start or join a Ray cluster (--ray-address {address!r}): "
                                 f"{str(err).splitlines()[0]}") from None
        gpus = 1 if torch.cuda.is_available() else 0
        actor = ray.remote(num_cpus=threads, num_gpus=gpus, max_restarts=-1, max_task_retries=-1)(worker)
        self.actors = [actor.remote(*args) for _ in range(workers)]
        self.next = 0

    def submit(self, segment, level=None):
        """Start one segment (a pipeline.segments.SegmentInput) on the next worker, with the clip's degradation
        level (the window workers'; a tensor [3] or None); returns its handle."""
        lr = (segment.lr.permute(0, 2, 3, 1) * 255).round().to(torch.uint8).numpy()
        actor = self.actors[self.next % len(self.actors)]
        self.next += 1
        return actor.run.remote(lr, segment.first_frame, None if level is None else level.tolist())

    def collect(self, handle) -> torch.Tensor:
        return torch.from_numpy(np.array(self.ray.get(handle)))     # Ray hands back read-only arrays

    def close(self) -> None:
        for a in self.actors:
            self.ray.kill(a)
        if self.started:
            self.ray.shutdown()
            ray_watchdog.stop(self.watchdog)
