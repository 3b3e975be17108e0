"""What a script in a container can and cannot reach, and how infrastructure errors read."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import docker
import pytest
from prefect.client.schemas.objects import StateType

from cronium_prefect.executors.docker import MANAGED_LABEL, OWNER_LABEL, DockerExecutor
from cronium_prefect.flows.runtime import Runtime, using_runtime
from cronium_prefect.settings import get_settings

from .helpers import event_from, logs_of, run_flow

PROBE = """
import json, os
def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return line.split()[1]
def can_write(path):
    try:
        with open(path, "a"):
            return True
    except OSError:
        return False
def cgroup(*names):
    for name in names:
        try:
            return open(name).read().strip()
        except OSError:
            pass
print(json.dumps({
    "uid": os.getuid(),
    "cap_eff": status("CapEff"),
    "no_new_privs": status("NoNewPrivs"),
    "docker_sock": os.path.exists("/var/run/docker.sock") or os.path.exists("/run/docker.sock"),
    "host_marker": os.path.exists(os.environ["HOST_MARKER"]),
    "cronium_home": os.path.exists(os.environ["HOST_HOME"]),
    "root_writable": can_write("/etc/cronium-probe"),
    "helpers_writable": can_write("/cronium/lib/cronium.py"),
    "input_writable": can_write("/cronium/in/input.json"),
    "tmp_writable": can_write("/tmp/probe"),
    "interfaces": sorted(os.listdir("/sys/class/net")),
    "pids_max": cgroup("/sys/fs/cgroup/pids/pids.max", "/sys/fs/cgroup/pids.max"),
    "memory_max": cgroup("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory.max"),
}))
import cronium
cronium.output("helpers work")
"""


def _probe(network: str, marker: Path) -> dict:
    event = event_from(
        f"name: probe-{network}\ntype: python\nresources: {{network: {network}, pids: 64, memory: 128m}}\n"
        f"env: {{HOST_MARKER: '{marker}', HOST_HOME: '{get_settings().home}'}}\n"
        f"script: {json.dumps(PROBE)}\n"
    )
    state, record = run_flow(event)
    assert record["status"] == "SUCCESS", record["error"]
    assert record["output"] == "helpers work"
    line = next(m for m in logs_of(record["run_id"]) if m.startswith("[stdout] {"))
    return json.loads(line.removeprefix("[stdout] "))


@pytest.fixture
def host_marker():
    marker = Path("/var/tmp") / f"cronium-host-marker-{uuid.uuid4().hex}"
    marker.write_text("host only")
    yield marker
    marker.unlink()


def test_container_has_no_host_paths_socket_capabilities_or_privilege_gain(stack, host_marker):
    seen = _probe("none", host_marker)
    assert seen["uid"] == 65534
    assert seen["cap_eff"] == "0000000000000000"
    assert seen["no_new_privs"] == "1"
    assert seen["docker_sock"] is False
    assert seen["host_marker"] is False and seen["cronium_home"] is False
    assert seen["root_writable"] is False
    assert seen["helpers_writable"] is False and seen["input_writable"] is False
    assert seen["tmp_writable"] is True
    assert seen["pids_max"] == "64"
    assert seen["memory_max"] == str(128 * 1024 * 1024)


def test_network_none_leaves_only_loopback_and_helpers_still_work(stack, host_marker):
    assert _probe("none", host_marker)["interfaces"] == ["lo"]
    assert "eth0" in _probe("bridge", host_marker)["interfaces"]


def test_missing_image_is_a_clear_failure_without_pull(stack):
    state, record = run_flow(
        event_from("name: no-image\ntype: bash\nimage: cronium-absent:never\nscript: echo hi\n")
    )
    assert state.type == StateType.FAILED
    assert "image 'cronium-absent:never' is not present locally" in record["error"]


def test_bad_image_name_is_a_clear_failure(stack):
    state, record = run_flow(
        event_from("name: bad-image\ntype: bash\nimage: 'Not A Valid::Name'\nscript: echo hi\n")
    )
    assert state.type == StateType.FAILED
    assert record["error"].startswith("image 'Not A Valid::Name' is not a valid image name"), (
        record["error"]
    )


@pytest.fixture
def fake_registry():
    """A local HTTP listener posing as a registry: it records every request dockerd makes."""
    requests: list[str] = []

    class Recorder(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's naming
            requests.append(self.path)
            self.send_response(404)
            self.end_headers()

        do_HEAD = do_GET

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}", requests
    server.shutdown()


def test_present_image_is_never_pulled(stack, docker_client, fake_registry, monkeypatch):
    registry, requests = fake_registry
    local = f"{registry}/cronium-test:bookworm"
    docker_client.images.get("cronium-test:bookworm").tag(local)
    monkeypatch.setenv("CRONIUM_DOCKER_PULL", "missing")
    get_settings.cache_clear()
    # A runtime of its own: a runtime reads the settings once (the process's default one
    # was made with the tests' CRONIUM_DOCKER_PULL=never).
    runtime = Runtime()
    try:
        with using_runtime(runtime):
            _, record = run_flow(
                event_from(f"name: no-pull\ntype: bash\nimage: {local}\nscript: echo hi\n")
            )
            assert record["status"] == "SUCCESS" and requests == []
            # The control: an absent image is pulled, which the registry sees, and fails.
            _, record = run_flow(
                event_from(
                    f"name: pulls\ntype: bash\nimage: {registry}/absent:x\nscript: echo hi\n"
                )
            )
        assert requests, "dockerd never asked the registry: the check above proves nothing"
        assert (
            f"image '{registry}/absent:x' is not present locally and could not be pulled"
            in record["error"]
        )
    finally:
        runtime.close()
        docker_client.images.remove(local)
        monkeypatch.undo()
        get_settings.cache_clear()


def test_helpers_reject_non_json_values_naming_the_key(stack):
    script = (
        "import cronium\ncronium.setVariable('GOOD', 1)\ncronium.setVariable('BAD_ONE', {1, 2})\n"
    )
    state, record = run_flow(
        event_from(f"name: non-json\ntype: python\nscript: {json.dumps(script)}\n")
    )
    assert record["status"] == "FAILURE"
    text = "\n".join(logs_of(record["run_id"]))
    assert "cronium.setVariable('BAD_ONE'): value of type set is not JSON-serialisable" in text

    node = "const c = require('cronium');\nc.output({f: 1n}).catch(e => { console.error(e.message); process.exit(4); });\n"
    state, record = run_flow(
        event_from(f"name: non-json-node\ntype: node\nscript: {json.dumps(node)}\n")
    )
    assert record["exit_code"] == 4
    assert any(
        "cronium.output(): value is not JSON-serialisable" in m for m in logs_of(record["run_id"])
    )


def test_output_over_the_limit_fails_the_run_clearly(stack):
    script = "import cronium\ncronium.output('x' * (2 * 1024 * 1024))\n"
    _, record = run_flow(event_from(f"name: big-py\ntype: python\nscript: {json.dumps(script)}\n"))
    assert record["status"] == "FAILURE"
    assert any("over the limit of 1048576 bytes" in m for m in logs_of(record["run_id"]))
    # Bypassing the helper does not help: the host checks what it reads back.
    bash = 'head -c 2000000 /dev/zero | tr "\\\\0" x > "$CRONIUM_DIR/out/output.txt"'
    _, record = run_flow(event_from(f"name: big-sh\ntype: bash\nscript: {json.dumps(bash)}\n"))
    assert record["status"] == "FAILURE" and record["exit_code"] == 0
    assert "output is 2000000 bytes, over the limit of 1048576 bytes" in record["error"]


def test_a_dead_workers_containers_are_reaped_by_the_next_executor(stack, docker_client):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    identity = f"{os.uname().nodename}/{dead.pid}/1"
    orphan = docker_client.containers.create(
        "cronium-test:bookworm",
        ["sleep", "600"],
        labels={MANAGED_LABEL: "true", OWNER_LABEL: identity},
    )
    orphan.start()
    alive = DockerExecutor(docker_client).owner
    survivor = docker_client.containers.create(
        "cronium-test:bookworm",
        ["sleep", "600"],
        labels={MANAGED_LABEL: "true", OWNER_LABEL: alive},
    )
    try:
        DockerExecutor(docker_client).reap_orphans()
        with pytest.raises(docker.errors.NotFound):
            orphan.reload()
        survivor.reload()  # a live process's container is left alone
    finally:
        survivor.remove(force=True)


def test_reaping_ignores_a_container_its_run_removes_meanwhile(stack, docker_client, monkeypatch):
    """Runs beside the reaper remove their containers at any moment: one listed and then
    removed must not fail the reap (it failed runs with NotFound, inspecting each)."""
    alive = DockerExecutor(docker_client).owner
    container = docker_client.containers.create(
        "cronium-test:bookworm", ["true"], labels={MANAGED_LABEL: "true", OWNER_LABEL: alive}
    )
    listing = docker_client.api.containers

    def listed_then_removed(*args, **kwargs):
        found = listing(*args, **kwargs)
        container.remove(force=True)  # its run ends between the listing and the look
        return found

    monkeypatch.setattr(docker_client.api, "containers", listed_then_removed)
    DockerExecutor(docker_client).reap_orphans()
    with pytest.raises(docker.errors.NotFound):
        container.reload()


def test_filling_the_output_directory_stops_the_run_before_the_disk_fills(stack):
    script = 'while :; do head -c 1048576 /dev/zero >> "$CRONIUM_DIR/out/junk"; done'
    _, record = run_flow(event_from(f"name: filler\ntype: bash\nscript: {json.dumps(script)}\n"))
    assert record["status"] == "FAILURE"
    assert "bytes into its output directory (limit 4194304); it was stopped" in record["error"]
