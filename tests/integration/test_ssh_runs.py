"""Remote events over a real sshd on 127.0.0.1."""

from __future__ import annotations

import json
import time

import pytest
from prefect.client.schemas.objects import StateType

from cronium_prefect.blocks.variable_store import get_variable_store
from tests.processes import wait_until
from tests.sshd import USER, processes_of_user, run_directories

from .helpers import event_from, logs_of, run_flow, script_lines
from .test_docker_runs import SCENARIO


def remote(name: str, language: str, script: str, servers=("ssh-main",), extra: str = "") -> str:
    return (
        f"name: {name}\ntype: {language}\nrun_location: remote\n"
        f"servers: {json.dumps(list(servers))}\nscript: {json.dumps(script)}\n{extra}"
    )


@pytest.mark.parametrize("language", ["python", "node", "bash"])
def test_helper_scenario_over_ssh(ssh_server, language):
    ssh_server("ssh-main")
    get_variable_store().set("GREETING", "hello from the store")
    state, record = run_flow(
        event_from(remote(f"ssh-scenario-{language}", language, SCENARIO[language])),
        input={"n": 41},
    )
    assert state.type == StateType.COMPLETED, record["error"]
    output = record["output"]
    assert output["greeting"] == "hello from the store" and output["input"] == {"n": 41}
    assert output["nested"] == {"list": [1, {"deep": True}]} and output["again"] == {"n": 42}
    assert output["meta"]["server"] == "ssh-main" and output["meta"]["run_id"] == record["run_id"]
    assert record["condition"] is True
    assert get_variable_store().visible(None).values[f"SEEN_{language.upper()}"] == {"n": 42}
    assert f"[ssh-main stdout] {language} done" in script_lines(record["run_id"])
    assert run_directories() == []


def test_password_authentication(ssh_server):
    ssh_server("ssh-password", password=True)
    _, record = run_flow(
        event_from(remote("ssh-pw", "bash", 'cronium_output "$(whoami)"', servers=["ssh-password"]))
    )
    assert record["status"] == "SUCCESS" and record["output"] == USER


def test_unknown_host_key_is_refused(ssh_server):
    ssh_server("ssh-unpinned", host_key=None)
    _, record = run_flow(
        event_from(remote("ssh-unknown", "bash", "echo never", servers=["ssh-unpinned"]))
    )
    assert record["status"] == "FAILURE"
    assert "presented an unknown host key ssh-ed25519 SHA256:" in record["error"]
    assert "--trust-host-key" in record["error"]


def test_changed_host_key_is_refused_naming_both_fingerprints(ssh_server, sshd):
    other = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
    server = ssh_server("ssh-changed", host_key=other)
    _, record = run_flow(
        event_from(remote("ssh-changed", "bash", "echo never", servers=["ssh-changed"]))
    )
    assert record["status"] == "FAILURE"
    seen = ssh_server("ssh-tmp").pinned_fingerprint()
    assert (
        f"presented host key {seen}, but {server.pinned_fingerprint()} is pinned" in record["error"]
    )
    assert f"127.0.0.1:{sshd.port}" in record["error"]


def test_timeout_kills_the_remote_process_tree_and_leaves_nothing(ssh_server):
    ssh_server("ssh-main")
    script = "sleep 301 &\nbash -c 'trap \"\" TERM; sleep 302' &\necho started\nsleep 303\n"
    started = time.monotonic()
    state, record = run_flow(event_from(remote("ssh-slow", "bash", script, extra="timeout: 2s\n")))
    assert time.monotonic() - started < 20
    assert state.name == "TimedOut" and record["status"] == "TIMEOUT"
    wait_until(
        lambda: not [p for p in processes_of_user() if "sleep 30" in p],
        10,
        "the timed-out script's processes ending",
    )
    assert run_directories() == []


def test_failure_removes_the_run_directory_too(ssh_server):
    ssh_server("ssh-main")
    _, record = run_flow(event_from(remote("ssh-fails", "bash", "echo no >&2; exit 4")))
    assert record["status"] == "FAILURE" and record["exit_code"] == 4
    assert run_directories() == []


INJECTIONS = [
    "$(touch /tmp/cronium-pwned-1)",
    "`touch /tmp/cronium-pwned-2`",
    "'; touch /tmp/cronium-pwned-3; '",
    '"; touch /tmp/cronium-pwned-4; "',
    "line1\ntouch /tmp/cronium-pwned-5",
    "a;touch /tmp/cronium-pwned-6 && echo $HOME",
]


def test_shell_metacharacters_in_env_variables_and_script_execute_nothing(ssh_server):
    from pathlib import Path

    ssh_server("ssh-main")
    for i, text in enumerate(INJECTIONS):
        get_variable_store().set(f"INJECT_{i}", text)
    env = {f"E{i}": text for i, text in enumerate(INJECTIONS)}
    script = (
        "import os, json, cronium\n"
        f"env = {{k: os.environ[k] for k in {sorted(env)!r}}}\n"
        f"variables = [cronium.getVariable('INJECT_{{}}'.format(i)) for i in range({len(INJECTIONS)})]\n"
        "cronium.output({'env': env, 'variables': variables, 'quote': \"it's $(not) `run`\"})\n"
    )
    event = event_from(remote("ssh-inject", "python", script) + f"env: {json.dumps(env)}\n")
    _, record = run_flow(event)
    assert record["status"] == "SUCCESS", record["error"]
    assert record["output"]["env"] == env
    assert record["output"]["variables"] == INJECTIONS
    assert record["output"]["quote"] == "it's $(not) `run`"
    assert not list(Path("/tmp").glob("cronium-pwned-*"))


def test_three_servers_one_failing_is_partial_with_every_log(ssh_server):
    for name in ("ssh-a", "ssh-b", "ssh-c"):
        ssh_server(name)
    script = (
        'server=$(cronium_event | sed \'s/.*"server": "\\([^"]*\\)".*/\\1/\')\n'
        'echo "on $server"\ncronium_output "\\"$server\\""\n'
        '[ "$server" != ssh-c ] || exit 2\n'
    )
    state, record = run_flow(
        event_from(remote("ssh-three", "bash", script, servers=["ssh-a", "ssh-b", "ssh-c"]))
    )
    assert state.type == StateType.COMPLETED and state.name == "Partial"
    assert record["status"] == "PARTIAL"
    assert {s["name"]: (s["status"], s["exit_code"]) for s in record["servers"]} == {
        "ssh-a": ("SUCCESS", 0),
        "ssh-b": ("SUCCESS", 0),
        "ssh-c": ("FAILURE", 2),
    }
    assert record["output"] == {"ssh-a": "ssh-a", "ssh-b": "ssh-b", "ssh-c": "ssh-c"}
    lines = script_lines(record["run_id"])
    for name in ("ssh-a", "ssh-b", "ssh-c"):
        assert f"[{name} stdout] on {name}" in lines


def test_three_servers_all_failing_is_failure(ssh_server):
    for name in ("ssh-a", "ssh-b", "ssh-c"):
        ssh_server(name)
    state, record = run_flow(
        event_from(remote("ssh-all-fail", "bash", "exit 3", servers=["ssh-a", "ssh-b", "ssh-c"]))
    )
    assert state.type == StateType.FAILED and record["status"] == "FAILURE"
    assert record["exit_code"] == 3 and len(record["servers"]) == 3


def test_missing_server_block_is_a_clear_failure(prefect_api):
    _, record = run_flow(event_from(remote("ssh-ghost", "bash", "true", servers=["no-such"])))
    assert record["status"] == "FAILURE"
    assert "server 'no-such' does not exist" in record["error"]


def test_secret_read_over_ssh_never_reaches_the_logs(ssh_server):
    ssh_server("ssh-main")
    get_variable_store().set("SSH_SECRET", "ssh-s3cret-8d2f", secret=True)
    _, record = run_flow(
        event_from(
            remote("ssh-secret", "bash", 'echo "secret=$(cronium_getVariable SSH_SECRET)" >&2')
        )
    )
    assert record["status"] == "SUCCESS"
    logs = "\n".join(logs_of(record["run_id"]))
    assert "secret=***" in logs and "ssh-s3cret-8d2f" not in logs


def test_background_processes_do_not_outlive_a_successful_run(ssh_server):
    ssh_server("ssh-main")
    _, record = run_flow(
        event_from(remote("ssh-bg", "bash", "sleep 304 &\necho left one behind\n"))
    )
    assert record["status"] == "SUCCESS"
    assert not [p for p in processes_of_user() if "sleep 304" in p]
    assert run_directories() == []
