"""Waiting for and stopping the servers and workers the tests start."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import httpx


def stop(*processes: subprocess.Popen, timeout: float = 30) -> None:
    """SIGTERM them all at once, then SIGKILL whichever has not exited after `timeout`."""
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill(process)
            process.wait()


def _kill(process: subprocess.Popen) -> None:
    """SIGKILL, to its whole session when it leads one (`prefect server start --workers N`
    spawned its API processes there: they would keep the port)."""
    try:
        if os.getpgid(process.pid) == process.pid:
            os.killpg(process.pid, signal.SIGKILL)
            return
    except ProcessLookupError:
        return
    process.kill()


def wait_for_http(
    url: str,
    process: subprocess.Popen | None = None,
    auth: tuple[str, str] | None = None,
    timeout: float = 60,
) -> None:
    """Until GET `url` answers 2xx; fails if `process` exits or `timeout` passes first."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url, auth=auth, timeout=1).is_success:
                return
        except httpx.HTTPError:
            pass
        assert process is None or process.poll() is None, f"the process behind {url} exited"
        assert time.monotonic() < deadline, f"{url} did not answer within {timeout:.0f} s"
        time.sleep(0.3)


def wait_until(predicate, timeout: float, what: str, interval: float = 0.2) -> float:
    """Until `predicate()` is true; the seconds it took. Fails naming `what` after `timeout`."""
    began = time.monotonic()
    assert settles(predicate, timeout, interval), f"{what} did not happen within {timeout:.0f} s"
    return time.monotonic() - began


def settles(predicate, timeout: float, interval: float = 0.2) -> bool:
    """Whether `predicate()` becomes true within `timeout`; the caller asserts, with its own
    counts, on what is left when it does not."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True
