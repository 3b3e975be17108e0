"""The `cronium` command line, one module per noun: events, runs, servers, vars and the
local stack. Exit codes: 0 success, 1 the run or command failed, 2 bad usage or invalid
input (always a message, never a traceback)."""

import gc

from .app import app, main

__all__ = ["app", "main", "program"]


def program() -> None:
    """`cronium` as a program (the console script, `python -m cronium_prefect.cli`)."""
    try:
        main()
    finally:
        # The interpreter's last collections walk every object Prefect's imports made:
        # ~0.3 s of every command's exit, measured (bench/wait_latency.py). Frozen objects
        # are skipped; exit hooks (Prefect's log and event queues) still run. Only here:
        # `main()` called in a process that goes on must not freeze its heap.
        gc.freeze()
