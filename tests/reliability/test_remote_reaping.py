"""Run directories a dead worker left on an SSH server are removed by the next worker that
connects there, with whatever of the run still runs; a live run's directory, and what is
not a run directory, are left alone.

The families: a directory whose script ended, one whose script still runs in its session,
one whose daemon left the session but carries the run's token, and the directory of a
worker killed (SIGKILL) mid-run for real. What a script could leave to turn the reaper
against others: a `pid` naming a process that is not the run's (as a reused id would), or
-1 (every process), a FIFO as `pid`, a directory name with a newline and a pattern; a
bystander process of the same user survives all of them, and none hangs the reaper. A
directory whose name carries a longer stale time (its worker's) is kept. A directory counts as a dead worker's once no
worker touched it for CRONIUM_SSH_STALE_AFTER (10 min): the test ages them, as that much
time would, instead of waiting.
"""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from tests.cli import cronium
from tests.integration.test_apply import write_events
from tests.processes import stop, wait_until
from tests.sshd import USER, run_directories

from .report import report

AGED = 3600  # seconds since the last touch: far past the 10 min stale time


def _runs_dir() -> Path:
    return Path(pwd.getpwnam(USER).pw_dir) / ".cronium" / "runs"


def _as_user(argv: list[str], env: dict[str, str] | None = None, cwd: Path | None = None):
    """A process of the SSH user's in a session of its own (as setsid makes)."""
    return subprocess.Popen(
        argv,
        user=USER,
        group=pwd.getpwnam(USER).pw_gid,  # the user's own group, as a login has it
        extra_groups=[],
        start_new_session=True,
        env=env or {"PATH": os.environ["PATH"]},
        cwd=cwd,
    )


def _run_dir(tag: str, pid: str = "999999 999999", age: float = AGED, name: str = "") -> Path:
    path = _runs_dir() / (name or f"run-{uuid.uuid4().hex[:20]}{tag}")
    path.mkdir(parents=True)
    (path / "out").mkdir()
    (path / "out" / "output.txt").write_text("left behind")
    for p in (path, path / "out", path / "out" / "output.txt"):
        os.chown(p, pwd.getpwnam(USER).pw_uid, pwd.getpwnam(USER).pw_gid)
    _write_pid(path, pid, age)
    return path


def _write_pid(path: Path, pid: str, age: float = AGED) -> None:
    if pid == "fifo":
        os.mkfifo(path / "pid")
    else:
        (path / "pid").write_text(f"{pid}\n")
    os.chown(path / "pid", pwd.getpwnam(USER).pw_uid, pwd.getpwnam(USER).pw_gid)
    os.utime(path, (time.time() - age, time.time() - age))


def _alive(process: subprocess.Popen) -> bool:
    return process.poll() is None


def _token_holders(token: str) -> list[int]:
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if f"CRONIUM_RUN_TOKEN={token}".encode() in environ.read_bytes().split(b"\0"):
                found.append(int(environ.parent.name))
        except OSError:
            continue
    return found


def _holding_cwd(directory: Path) -> list[int]:
    """Processes whose working directory is `directory` (the `sleep` the session forked)."""
    found = []
    for cwd in Path("/proc").glob("[0-9]*/cwd"):
        try:
            if cwd.resolve() == directory.resolve():
                found.append(int(cwd.parent.name))
        except OSError:
            continue
    return found


def _live_pid(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _worker(log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "cronium_prefect.cli", "worker"],
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )


@pytest.mark.timeout(300)
def test_the_next_worker_reaps_what_dead_workers_left(
    prefect_api, docker_client, ssh_server, tmp_path
):
    ssh_server("rel-reap")
    folder = write_events(
        tmp_path / "events",
        {
            "dead.yaml": "name: rel-reap-dead\ntype: bash\nstatus: active\n"
            "run_location: remote\nservers: [rel-reap]\nscript: sleep 240\n",
            "next.yaml": "name: rel-reap-next\ntype: bash\nstatus: active\n"
            "run_location: remote\nservers: [rel-reap]\nscript: echo hi\n",
        },
    )
    assert cronium("apply", str(folder)).returncode == 0
    # A real worker dies mid-run: its run directory and script stay on the server.
    before = set(run_directories())
    first = _worker(tmp_path / "first.log")
    processes = []
    try:
        assert cronium("trigger", "rel-reap-dead").returncode == 0
        wait_until(
            lambda: any(
                (_runs_dir() / d / "pid").exists() for d in set(run_directories()) - before
            ),
            60,
            "the run directory of the first worker's run",
        )
        first.send_signal(signal.SIGKILL)
        first.wait()
        (killed,) = set(run_directories()) - before
        wait_until(lambda: _token_holders(killed), 10, "the orphaned script")
        os.utime(_runs_dir() / killed, (time.time() - AGED, time.time() - AGED))

        ended = _run_dir("-ended")
        # A script still running in its session, its token dropped (env -i): the session
        # leader, in the run's directory, marks the session as the run's.
        running = _run_dir("-running")
        running_script = _as_user(["sh", "-c", "sleep 300 & wait"], cwd=running)
        _write_pid(running, f"{running_script.pid} {running_script.pid}")
        wait_until(lambda: len(_holding_cwd(running)) == 2, 10, "the session's sleep")
        session = _holding_cwd(running)
        daemon_dir = _run_dir("-daemon")
        daemon = _as_user(
            ["sleep", "300"], env={"PATH": os.environ["PATH"], "CRONIUM_RUN_TOKEN": daemon_dir.name}
        )
        live_script = _as_user(["sleep", "300"])
        live = _run_dir("-live", pid=f"{live_script.pid} {live_script.pid}", age=0)
        # Not the run's: the same user's login elsewhere, named by a reused id, by -1, or
        # matched by a pattern smuggled in a directory name (grep reads one per line).
        bystander = _as_user(["sleep", "300"], env={"PATH": os.environ["PATH"], "KEEP": "1"})
        reused = _run_dir("-reused", pid=f"{bystander.pid} {bystander.pid}")
        everyone = _run_dir("-everyone", pid="-1 -1")
        fifo = _run_dir("-fifo", pid="fifo")
        smuggled = _run_dir("", name="run-x\nKEEP=1")
        longer = _run_dir("", name=f"run-{uuid.uuid4().hex}-{AGED * 2}")
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        (elsewhere / "keep").write_text("not a run's")
        link = _runs_dir() / "run-link-to-elsewhere"
        link.symlink_to(elsewhere)
        not_a_run = _runs_dir() / "notes"
        not_a_run.mkdir()
        processes = [running_script, daemon, live_script, bystander]

        second = _worker(tmp_path / "second.log")
        try:
            done = cronium("trigger", "rel-reap-next", "--wait")
            assert done.returncode == 0, done.stdout + done.stderr
        finally:
            stop(second)
        present = set(run_directories())
        wait_until(lambda: not _token_holders(killed), 10, "the orphaned script killed")
        assert killed not in present and ended.name not in present
        assert running.name not in present and daemon_dir.name not in present
        wait_until(lambda: not _alive(running_script) and not _alive(daemon), 10, "both killed")
        wait_until(lambda: not any(map(_live_pid, session)), 10, "the session's sleep killed")
        for gone in (reused, everyone, fifo):
            assert gone.name not in present
        assert _alive(bystander), "the reaper killed a process that was not a run's"
        assert smuggled.name in present  # not a name we make: never read, never removed
        # A live run's directory, one whose worker's stale time is longer, a link and a
        # folder that is not a run's: left alone.
        assert live.name in present and _alive(live_script) and longer.name in present
        assert link.is_symlink() and (elsewhere / "keep").read_text() == "not a run's"
        assert not_a_run.is_dir()
        report("remote_reaping", {"reaped": 7, "kept": 5, "bystander_alive": True})
    finally:
        if _alive(first):
            first.kill()
        for process in processes:
            process.kill()
        subprocess.run(
            ["rm", "-rf", "--", *[str(_runs_dir() / n) for n in os.listdir(_runs_dir())]]
        )


def test_a_live_runs_lease_keeps_its_directory_past_the_stale_time(sshd, prefect_api, tmp_path):
    """A run longer than the stale time is touched by its worker as it goes, so another
    worker connecting meanwhile (its own pool) leaves it alone."""
    from pydantic import SecretStr

    from cronium_prefect.blocks import SSHServer
    from cronium_prefect.executors.base import ExecutionRequest
    from cronium_prefect.executors.ssh import SSHExecutor
    from cronium_prefect.executors.ssh_pool import ConnectionPool
    from cronium_prefect.runtime_helpers.host import Staging

    server = SSHServer(
        host="127.0.0.1",
        port=sshd.port,
        username=USER,
        private_key=SecretStr(sshd.client_key),
        host_key=sshd.host_key_line,
    )
    stale = 10.0

    def run(script: str, results: list) -> None:
        staging = Staging.create(tmp_path / uuid.uuid4().hex, "bash", script, None, {}, {})
        executor = SSHExecutor(
            server, "rel-lease", ConnectionPool(), ".cronium/runs", stale_after=stale
        )
        try:
            results.append(
                executor.run(
                    ExecutionRequest(run_id="lease", language="bash", staging=staging, timeout=60)
                )
            )
        finally:
            staging.remove()

    long_results: list = []
    long_run = threading.Thread(target=run, args=("sleep 22; cronium_output 7", long_results))
    long_run.start()
    began = time.monotonic()
    wait_until(lambda: run_directories(), 10, "the long run's directory")
    time.sleep(max(0.0, began + stale + 5 - time.monotonic()))  # past the stale time
    other: list = []
    run("echo hi", other)  # a new pool: a new connection, which reaps
    long_run.join(60)
    assert other[0].succeeded, other[0].error
    (result,) = long_results
    assert result.succeeded and result.collected.output == 7, result.error
