"""A worker that does not stop after SIGTERM says what each thread is doing and exits,
within its deadline: its caller (systemd, `cronium up`, a benchmark) never waits on it."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

STUBBORN = """
import signal, time
from cronium_prefect.cli import runs
runs.STOP_DEADLINE_S = 1
signal.signal(signal.SIGTERM, runs._stop_on_term)
signal.signal(signal.SIGINT, lambda *_: None)  # a stop that never ends
print("ready", flush=True)
while True:
    time.sleep(0.1)
"""


def test_a_worker_stuck_stopping_prints_its_threads_and_exits_by_the_deadline():
    process = subprocess.Popen(
        [sys.executable, "-c", STUBBORN],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout.readline().strip() == "ready"
    sent = time.monotonic()
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=30)
    took = time.monotonic() - sent
    assert process.returncode == 1, stderr
    assert "still stopping 1 s after SIGTERM" in stderr
    assert 'File "<string>"' in stderr  # the main thread's stack, where it was stuck
    assert "exiting now" in stderr
    print(f"stopped {took:.1f} s after SIGTERM (deadline 1 s)")
