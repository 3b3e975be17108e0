"""A throwaway redis-server on 127.0.0.1 (Debian's package), no persistence, for the tests
and benchmarks that run Prefect's scaled server."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

from tests.ports import free_port
from tests.processes import stop


def start_redis(folder: Path) -> tuple[subprocess.Popen, str]:
    """redis-server on a free loopback port, its log in `folder`, once it accepts
    connections: (the process, the URL of its database 0). Database 0: another stack on
    this Redis takes another database, as Prefect's consumer groups have fixed names."""
    port = free_port()
    with open(folder / "redis.log", "w") as log:
        server = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
            + ["--appendonly", "no", "--dir", str(folder)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return server, f"redis://127.0.0.1:{port}/0"
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                stop(server)
                raise RuntimeError(
                    f"redis-server did not start: {(folder / 'redis.log').read_text()}"
                ) from None
            time.sleep(0.1)
