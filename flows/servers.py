"""SSH server health as any process can see it: `check_server` connects, reads the facts
(OS, CPUs, memory, uptime) and records the outcome as a `cronium.server.checked` Prefect
event; the worker's circuit breakers record theirs as `cronium.server.circuit-*` events.
The CLI and the dashboard read the last of each from the API."""

from __future__ import annotations

import re
import shlex
from typing import Any

import paramiko
from prefect.events import emit_event

from cronium_prefect.caps import cap_text
from cronium_prefect.errors import ConnectionFailed, CroniumError, HostKeyRejected
from cronium_prefect.names import SERVER_CHECKED, circuit_event, server_resource_id

__all__ = ["check_server", "announce_circuit", "facts_text"]

# Fixed command: nothing from the user is interpolated into it (the run area, a setting,
# is quoted). One fact a line; a missing tool prints `-`.
_FACTS_COMMAND = (
    'one() { IFS= read -r l; echo "${l:--}"; }; '  # each fact exactly one line, "-" if none
    "uname -srm 2>/dev/null | one; getconf _NPROCESSORS_ONLN 2>/dev/null | one; "
    "awk '/^MemTotal:/ {print $2}' /proc/meminfo 2>/dev/null | one; "
    "cut -d' ' -f1 /proc/uptime 2>/dev/null | one; "
    '( . /etc/os-release 2>/dev/null && echo "$PRETTY_NAME" ) | one; '
    '{ getent passwd "$(id -un)" | cut -d: -f7; } 2>/dev/null | one; '
    "{ command -v python3 >/dev/null && python3 --version 2>&1; } | one; "
    "{ command -v node >/dev/null && node --version 2>&1; } | one; "
    'd={area}; [ -d "$d" ] || d=.; df -Pk "$d" 2>/dev/null | awk \'NR==2 {print $4}\' | one'
)


FACTS_BYTES = 4096  # nine short lines
FACT_CHARS = 200  # each shown fact (kernel, OS name...)


def _read_facts(name: str, server: Any) -> dict[str, Any]:
    from cronium_prefect.executors.ssh_pool import connect, posix
    from cronium_prefect.settings import get_settings

    command = _FACTS_COMMAND.replace("{area}", shlex.quote(get_settings().ssh_remote_dir))
    transport = connect(server)
    try:
        channel = transport.open_session(timeout=server.connect_timeout)
        channel.settimeout(server.connect_timeout)
        channel.exec_command(posix(command))  # whatever the login shell is
        # A hostile server could answer for ever: read a bounded amount.
        text = channel.makefile("r").read(FACTS_BYTES).decode(errors="replace")
        channel.close()
        sftp = _offers_sftp(transport, server.connect_timeout)
    except (paramiko.SSHException, OSError, EOFError) as exc:
        raise ConnectionFailed(
            cap_text(f"{server.address}: the connection failed: {exc}")
        ) from None
    finally:
        transport.close()
    lines = (text.splitlines() + [""] * 9)[:9]

    def fact(index: int) -> str | None:
        value = lines[index].strip()
        return None if value in ("", "-") else cap_text(value, FACT_CHARS)

    return {
        "server": name,
        "kernel": fact(0),
        "os": fact(4),
        "cpus": int(lines[1]) if lines[1].isdigit() else None,
        "memory_bytes": int(lines[2]) * 1024 if lines[2].isdigit() else None,  # kB in meminfo
        "uptime_s": float(lines[3]) if lines[3].replace(".", "", 1).isdigit() else None,
        "shell": fact(5),
        "python3": fact(6),
        "node": fact(7),
        "free_disk_bytes": int(lines[8]) * 1024 if lines[8].isdigit() else None,
        "sftp": sftp,  # without it, runs move their files over exec channels (tar)
    }


def _offers_sftp(transport: paramiko.Transport, timeout: float) -> bool:
    """Whether the server starts its SFTP subsystem: asked, never spoken (what answers
    could be anything, under a ForceCommand)."""
    channel = transport.open_session(timeout=timeout)
    try:
        channel.invoke_subsystem("sftp")
        return True
    except paramiko.SSHException:
        if not transport.is_active():
            raise
        return False
    finally:
        channel.close()


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


def facts_text(facts: dict[str, Any]) -> str:
    """A check's facts in two lines, as the CLI and the dashboard show them (an older
    check's payload may lack the later facts)."""

    def gib(key: str) -> str:
        return f"{facts[key] / 2**30:.1f} GiB" if facts.get(key) else "?"

    uptime = f"{facts['uptime_s'] / 3600:.1f} h" if facts.get("uptime_s") is not None else "?"
    transfer = {True: "SFTP", False: "no SFTP: files over exec channels (tar)"}
    return (
        f"{facts.get('os')} ({facts.get('kernel')}), {facts.get('cpus')} CPUs, "
        f"{gib('memory_bytes')} memory, up {uptime}\n"
        f"login shell {facts.get('shell') or '?'}; {facts.get('python3') or 'no python3'}; "
        f"node {facts.get('node') or 'none'}; {gib('free_disk_bytes')} free for runs; "
        f"{transfer.get(facts.get('sftp'), 'SFTP ?')}"
    )


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
