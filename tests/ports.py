"""Free TCP ports on 127.0.0.1, for the servers the tests start.

Each pytest-xdist worker takes its ports from a block of its own, below Linux's ephemeral
range (32768-60999), so no two workers can be handed the same port between one asking and
its server binding it, and no outgoing connection's port can take it meanwhile either.
"""

from __future__ import annotations

import itertools
import os
import socket

BLOCK = 1000
FIRST = 20_000  # 11 workers and a session without xdist fit below 32768


def _worker_index() -> int:
    """0 without xdist, 1 + N for its worker "gwN"."""
    name = os.environ.get("PYTEST_XDIST_WORKER", "")
    return 1 + int(name[2:]) if name.startswith("gw") else 0


_candidates = itertools.cycle(
    range(FIRST + BLOCK * _worker_index(), FIRST + BLOCK * (_worker_index() + 1))
)


def free_port() -> int:
    """A port of this worker's block that nothing listens on now (the next one, in turn)."""
    for _ in range(BLOCK):
        port = next(_candidates)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {FIRST + BLOCK * _worker_index()} + {BLOCK}")
