"""Stopping the servers and workers the tests start."""

from __future__ import annotations

import subprocess


def stop(*processes: subprocess.Popen, timeout: float = 30) -> None:
    """SIGTERM them all at once, then SIGKILL whichever has not exited after `timeout`."""
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
