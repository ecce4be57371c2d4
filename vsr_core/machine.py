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


def _cpu_jiffies() -> tuple[int, int] | None:
    """(idle, total) jiffies of all CPUs from /proc/stat (Linux), or None."""
    try:
        with open("/proc/stat") as fh:
            fields = [int(v) for v in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    return fields[3] + (fields[4] if len(fields) > 4 else 0), sum(fields[:8])


def busy_cores(sample_s: float = 0.2) -> float:
    """How many cores other processes keep busy now: from /proc/stat over ``sample_s`` seconds (this process
    waits meanwhile), else the 1-minute load average."""
    import os
    import time
    first = _cpu_jiffies()
    if first is not None:
        time.sleep(sample_s)
        second = _cpu_jiffies()
        if second is not None and second[1] > first[1]:
            idle = (second[0] - first[0]) / (second[1] - first[1])
            return (os.cpu_count() or 1) * (1.0 - idle)
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return 0.0


def free_cores(cores: int | None = None, busy: float | None = None) -> int:
    """CPU threads worth using now: the cores this process may run on less those other processes keep busy
    (``busy_cores``, rounded), at least 1.

    On a 2-core AMD EPYC shared with other jobs (load average 3-5) the 48-frame upscale took 41.6 s with
    torch's default 2 threads and 17.8 s with 1 (median of 3 alternating runs): a thread that waits for a
    descheduled partner at every parallel region spins, so two threads on one free core cost more than one.
    Measured now rather than from the load average, which still counts a job that just finished.
    """
    import os
    if cores is None:
        try:
            cores = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            cores = os.cpu_count() or 1
    if busy is None:
        busy = busy_cores()
    return max(1, min(cores, int(cores - busy + 0.5)))


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
