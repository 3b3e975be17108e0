"""A server that answers `cronium server test` with a flood (endless lines, one endless
line, one huge fact) is read a bounded amount: the check ends in a few seconds, every
fact shown and sent to Prefect as the event's payload is capped, saying so. So is the
error of a server whose SSH banner is the flood (paramiko quotes it whole)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter

from cronium_prefect.blocks import SSHServer
from cronium_prefect.names import SERVER_CHECKED, server_resource_id
from tests.cli import cronium
from tests.sshd import USER, Sshd

from .report import report

FLOODS = {
    "endless lines": "exec yes hostile-server",
    "one endless line": "exec tr '\\0' x < /dev/zero",
    "a 1 MB OS name": "printf 'Linux\\n2\\n1024\\n5.0\\n%s\\n' \"$(head -c 1000000 /dev/zero | tr '\\0' y)\"",
}


@pytest.fixture(scope="module")
def hostile():
    # Where the SSH user can read the answer (pytest's tmp_path is root's alone).
    directory = Path(tempfile.mkdtemp(prefix="cronium-hostile-sshd-"))
    os.chmod(directory, 0o755)
    script = directory / "answer.sh"
    script.write_text("true\n")
    server = Sshd.create(directory, extra_config=f"ForceCommand sh {script}\n")
    yield server, script
    server.remove()
    shutil.rmtree(directory, ignore_errors=True)


def _payloads(name: str) -> list[dict]:
    async def read():
        async with get_client() as client:
            page = await client.request(
                "POST",
                "/events/filter",
                json={
                    "filter": EventFilter(
                        event=EventNameFilter(name=[SERVER_CHECKED]),
                        resource=EventResourceFilter(id=[server_resource_id(name)]),
                    ).model_dump(mode="json"),
                    "limit": 50,
                },
            )
            return [e["payload"] for e in page.json()["events"]]

    return asyncio.run(read())


def test_a_flooding_server_is_read_a_bounded_amount(prefect_api, hostile):
    server, script = hostile
    seen = {}
    for index, (case, command) in enumerate(FLOODS.items()):
        name = f"rel-hostile-{index}"
        SSHServer(
            host="127.0.0.1",
            port=server.port,
            username=USER,
            private_key=server.client_key,
            host_key=server.host_key_line,
            connect_timeout=5,
        ).save(name, overwrite=True, _sync=True)
        script.write_text(command + "\n")
        began = time.monotonic()
        done = cronium("server", "test", name, "--json")
        took = time.monotonic() - began
        assert done.returncode == 0, (case, done.stderr[-2000:])
        facts = json.loads(done.stdout)
        assert len(done.stdout) < 2_000, (case, len(done.stdout))
        assert all(len(str(v)) <= 250 for v in facts.values()), (case, facts)
        if case != "endless lines":  # short lines: nothing to cut, but it must end
            assert any("[cut:" in str(v) for v in facts.values()), (case, facts)
        # The event Prefect keeps holds the same capped facts.
        deadline = time.monotonic() + 15
        while not (payloads := _payloads(name)) and time.monotonic() < deadline:
            time.sleep(0.3)
        assert payloads and len(json.dumps(payloads[0])) < 2_000, (case, payloads)
        seen[case] = {"seconds": round(took, 1), "stdout_chars": len(done.stdout)}
    report("hostile_server", seen)


BANNERS = {
    "a 1 MB version line": b"SSH-2.0-" + b"v" * 1_000_000 + b"\r\n",
    "a 1 MB line that is not SSH": b"x" * 1_000_000 + b"\r\nSSH-1.0-" + b"w" * 300_000 + b"\r\n",
    "a 1 MB protocol name": b"SSH-" + b"9" * 1_000_000 + b"-x\r\n",
}


def _banner_server(banner: bytes) -> tuple[socket.socket, int]:
    """A TCP port on loopback that sends `banner` to whoever connects, then waits."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            try:
                conn.sendall(banner)
                time.sleep(2)
            except OSError:
                pass
            finally:
                conn.close()

    threading.Thread(target=serve, daemon=True).start()
    return listener, listener.getsockname()[1]


def test_a_flooding_banner_is_a_capped_error(prefect_api, hostile):
    server, _ = hostile
    seen = {}
    for index, (case, banner) in enumerate(BANNERS.items()):
        name = f"rel-banner-{index}"
        listener, port = _banner_server(banner)
        try:
            SSHServer(
                host="127.0.0.1",
                port=port,
                username=USER,
                private_key=server.client_key,
                host_key=server.host_key_line,
                connect_timeout=5,
            ).save(name, overwrite=True, _sync=True)
            done = cronium("server", "test", name)
        finally:
            listener.close()
        assert done.returncode == 1, (case, done.stdout[-500:], done.stderr[-500:])
        # Read whole, paramiko quotes the banner; on a loaded machine reading 1 MB a byte
        # at a time may outlast the connect timeout instead. Either way: one capped error.
        assert f"127.0.0.1:{port}" in done.stderr, (case, done.stderr[-500:])
        assert len(done.stderr) < 6_000 and "Traceback" not in done.stderr, (case, len(done.stderr))
        deadline = time.monotonic() + 15
        while not (payloads := _payloads(name)) and time.monotonic() < deadline:
            time.sleep(0.3)
        assert payloads and payloads[0]["ok"] is False, (case, payloads)
        assert len(json.dumps(payloads[0])) < 6_000, (case, len(json.dumps(payloads[0])))
        seen[case] = {"stderr_chars": len(done.stderr)}
    report("hostile_banner", seen)
