"""Who owns a leftover (a container, a staging directory) and whether that owner still lives.

An owner is `host/pid/start-ticks`: the start time keeps it unique when a pid is reused,
so a leftover is reaped only when the exact process that made it is gone.
"""

from __future__ import annotations

import os
import socket

__all__ = ["process_identity", "current_identity", "is_orphan"]


def process_identity(pid: int) -> str | None:
    """The identity of a live process on this host, or None when there is none."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            ticks = handle.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None
    return f"{socket.gethostname()}/{pid}/{ticks}"


def current_identity() -> str:
    pid = os.getpid()
    return process_identity(pid) or f"{socket.gethostname()}/{pid}/0"


def is_orphan(owner: str) -> bool:
    """True when `owner` names a process of this host that no longer runs."""
    host, _, rest = owner.partition("/")
    pid = rest.partition("/")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False  # another host's leftovers are that host's to reap
    return process_identity(int(pid)) != owner
