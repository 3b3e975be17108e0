"""SSH server health as any process can see it: `check_server` connects, reads the facts
(OS, CPUs, memory, uptime) and records the outcome as a `cronium.server.checked` Prefect
event; the worker's circuit breakers record theirs as `cronium.server.circuit-*` events.
The CLI and the dashboard read the last of each from the API."""

from __future__ import annotations

import re
from typing import Any

import paramiko
from prefect.events import emit_event

from cronium_prefect.caps import cap_text
from cronium_prefect.errors import ConnectionFailed, CroniumError, HostKeyRejected
from cronium_prefect.names import SERVER_CHECKED, circuit_event, server_resource_id

__all__ = ["check_server", "announce_circuit"]

# Fixed command: nothing from the user is interpolated into it.
_FACTS_COMMAND = (
    "uname -srm; getconf _NPROCESSORS_ONLN; "
    "awk '/^MemTotal:/ {print $2}' /proc/meminfo; cut -d' ' -f1 /proc/uptime; "
    '( . /etc/os-release 2>/dev/null && echo "$PRETTY_NAME" ) || echo unknown'
)


FACTS_BYTES = 4096  # five short lines
FACT_CHARS = 200  # each shown fact (kernel, OS name)


def _read_facts(name: str, server: Any) -> dict[str, Any]:
    from cronium_prefect.executors.ssh_pool import connect

    transport = connect(server)
    try:
        channel = transport.open_session(timeout=server.connect_timeout)
        channel.settimeout(server.connect_timeout)
        channel.exec_command(_FACTS_COMMAND)
        # A hostile server could answer for ever: read a bounded amount.
        text = channel.makefile("r").read(FACTS_BYTES).decode(errors="replace")
    except (paramiko.SSHException, OSError, EOFError) as exc:
        raise ConnectionFailed(
            cap_text(f"{server.address}: the connection failed: {exc}")
        ) from None
    finally:
        transport.close()
    lines = (text.splitlines() + [""] * 5)[:5]
    return {
        "server": name,
        "kernel": cap_text(lines[0], FACT_CHARS),
        "os": cap_text(lines[4], FACT_CHARS),
        "cpus": int(lines[1]) if lines[1].isdigit() else None,
        "memory_bytes": int(lines[2]) * 1024 if lines[2].isdigit() else None,  # kB in meminfo
        "uptime_s": float(lines[3]) if lines[3].replace(".", "", 1).isdigit() else None,
    }


def check_server(name: str) -> dict[str, Any]:
    """Connect to the `cronium-ssh-server` block `name` and return its facts; raises
    CroniumError (unknown server) or ConnectionFailed / HostKeyRejected. Either way the
    outcome is recorded as an event."""
    from cronium_prefect.blocks import SSHServer
    from cronium_prefect.event import SERVER_NAME_PATTERN
    from cronium_prefect.prefect_adapter import load_block_sync

    if not re.fullmatch(SERVER_NAME_PATTERN, name):  # never into an API path: `..` goes up
        raise CroniumError(f"no server named {name!r} (see `cronium server list`)")
    try:
        server = load_block_sync(SSHServer, name)
    except ValueError:
        raise CroniumError(f"no server named {name!r} (see `cronium server list`)") from None
    try:
        facts = _read_facts(name, server)
    except (ConnectionFailed, HostKeyRejected) as exc:
        _record(name, {"ok": False, "error": cap_text(str(exc))})
        raise
    _record(name, {"ok": True, **facts})
    return facts


def _record(name: str, payload: dict[str, Any]) -> None:
    emit_event(
        event=SERVER_CHECKED,
        resource={"prefect.resource.id": server_resource_id(name), "prefect.resource.name": name},
        payload=payload,
    )


def announce_circuit(name: str, state: str, failures: int, cooldown: float) -> None:
    """A Prefect event per breaker transition: the breaker lives in one worker process, the
    event lets the dashboard (or an automation) see it."""
    emit_event(
        event=circuit_event(state),
        resource={"prefect.resource.id": server_resource_id(name), "prefect.resource.name": name},
        payload={"failures": failures, "cooldown_s": cooldown},
    )
