"""Ties a local Ray cluster's life to its driver's: `python -m vsr_core.jobs.ray_watchdog DRIVER_PID`.

Ray fate-shares its GCS, raylet and workers with the driver that started
them, but its agents (DashboardAgent, RuntimeEnvAgent) are the raylet's
children and outlive a driver killed with SIGKILL. This small process reads
a pipe only the driver holds open, and notes the driver's descendants
every half second; when the pipe closes without the driver saying "done"
(the driver died), it ends every process it noted that still runs (the same
pid and start time, so a reused pid is never touched). Nothing else is
ever signalled.
"""
from __future__ import annotations

import os
import select
import subprocess
import sys

DONE = b"done\n"
SNAPSHOT_S = 0.5


def start() -> subprocess.Popen | None:
    """A watchdog for this process (the driver); None where it cannot run (no psutil)."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
    try:
        return subprocess.Popen([sys.executable, "-m", "vsr_core.jobs.ray_watchdog", str(os.getpid())],
                                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env=env, start_new_session=True)     # a Ctrl-C to the terminal spares it
    except OSError:
        return None


def stop(watchdog: subprocess.Popen | None) -> None:
    """The driver shut Ray down itself: tell the watchdog to leave everything alone."""
    if watchdog is None:
        return
    try:
        watchdog.stdin.write(DONE)
        watchdog.stdin.close()
        watchdog.wait(timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        pass


def _psutil():
    try:
        import psutil
    except ImportError:          # Ray ships its own copy (on sys.path once ray is imported; found here without)
        import importlib.util
        ray = importlib.util.find_spec("ray")
        sys.path.append(os.path.join(os.path.dirname(ray.origin), "thirdparty_files"))
        import psutil
    return psutil


def _end(psutil, noted: dict) -> None:
    alive = []
    for pid, started in noted.items():
        try:
            process = psutil.Process(pid)
            if process.create_time() == started:
                process.terminate()
                alive.append(process)
        except psutil.Error:
            pass
    _, left = psutil.wait_procs(alive, timeout=3)
    for process in left:
        try:
            process.kill()
        except psutil.Error:
            pass


def watch(driver_pid: int) -> None:
    psutil = _psutil()
    driver, noted, me = psutil.Process(driver_pid), {}, os.getpid()
    while True:
        readable, _, _ = select.select([0], [], [], SNAPSHOT_S)
        if readable:
            data = os.read(0, 64)
            if DONE in data:
                return
            if not data:           # the driver's end closed without "done": it died
                _end(psutil, noted)
                return
        try:
            for child in driver.children(recursive=True):
                if child.pid != me and child.pid not in noted:
                    noted[child.pid] = child.create_time()
        except psutil.Error:
            pass                     # the driver is gone; the pipe's end follows


if __name__ == "__main__":
    watch(int(sys.argv[1]))
