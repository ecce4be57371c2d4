"""What machine a measurement or a training run came from (for benchmarks and model cards)."""
from __future__ import annotations

import platform
import subprocess


def cpu_name() -> str:
    """The CPU model, as lscpu or /proc/cpuinfo names it."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            if line.strip().startswith("Model name"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def set_threads(threads: int) -> None:
    """Use `threads` CPU threads for torch (0 keeps torch's default: one per physical core)."""
    from .errors import InputError
    if not isinstance(threads, int) or threads < 0:
        raise InputError(f"--threads {threads}; expected 0 (default) or a positive count")
    if threads:
        import torch
        torch.set_num_threads(threads)
