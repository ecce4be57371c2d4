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


def tune_allocator() -> bool:
    """Keep freed memory in the process instead of returning it to the kernel (glibc only).

    Video frames make many large, short-lived tensors; by default glibc serves
    each from fresh mmap'd pages that the kernel must zero, which cost 14 of
    23 s (system time) of a 48-frame 720p upscale here. With mmap off and a
    high trim threshold the heap is reused: 16.4 s, peak memory +19%. Called
    by the command line only, never inside ComfyUI (a process-wide setting).
    """
    import ctypes
    import ctypes.util
    name = ctypes.util.find_library("c")
    if platform.system() != "Linux" or not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        m_trim_threshold, m_mmap_max = -1, -4
        return bool(libc.mallopt(m_mmap_max, 0)) and bool(libc.mallopt(m_trim_threshold, 1 << 30))
    except (OSError, AttributeError):
        return False


def ram_bytes() -> tuple[int, int]:
    """(available, total) RAM in bytes: /proc/meminfo's MemAvailable (what can be used without swapping,
    page cache included) on Linux, else the free and total physical pages; (0, 0) if neither is known."""
    try:
        with open("/proc/meminfo") as fh:
            fields = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in fh if line.strip()}
        if "MemAvailable" in fields and "MemTotal" in fields:
            return fields["MemAvailable"], fields["MemTotal"]
    except (OSError, ValueError, IndexError):
        pass
    try:
        import os
        page = os.sysconf("SC_PAGE_SIZE")
        return os.sysconf("SC_AVPHYS_PAGES") * page, os.sysconf("SC_PHYS_PAGES") * page
    except (OSError, ValueError, AttributeError):
        return 0, 0
