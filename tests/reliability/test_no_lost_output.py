"""No lost output: every line a script prints reaches the Prefect API's logs, in order.

A python script prints many lines fast to stdout (200,000 in Docker, 20,000 over SSH), a
line to stderr every 500 of them, a 1 MiB line (which the executor's LineSink cuts into
64 KiB pieces, each but the last marked " [line continues]"), a line of invalid UTF-8 (each
bad sequence replaced visibly by U+FFFD) and a last line without a trailing newline. Then:

- every line is in the API, exactly once: nothing dropped, duplicated or added;
- each stream's lines are in the order the script printed them;
- the run record's `log_lines` (the lines the executor counted) equals the number of script
  lines the API holds.

Order across the two streams is not checked: stdout and stderr are two pipes, read apart by
Docker or sshd, so no backend can say which of two lines printed close together on different
streams came first. The API sorts logs by timestamp alone (microseconds): lines logged within
one microsecond tie and come back in no promised order, so ties are put in the order the
script printed them, and counted in the report.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter
from datetime import datetime

import httpx
import pytest
from prefect.settings import PREFECT_API_URL, temporary_settings

from tests.conftest import TEST_IMAGE
from tests.integration.helpers import SCRIPT_LINE, event_from, run_flow
from tests.sizes import size

from .report import report

# CI: 20,000 in Docker; CRONIUM_TEST_SIZE=full: 200,000. Over SSH 20,000 either way: the
# output must outgrow paramiko's channel window (each 10,000 lines cost ~20 s of CI).
DOCKER_LINES = size(ci=20_000, full=200_000)
SSH_LINES = 20_000
STDERR_EVERY = 500
# Makes even the SSH output (~4 MB) outgrow paramiko's 2 MiB channel window: flow control.
PADDING = "the quick brown fox jumps over the lazy dog"
LONG_LINE_NUMBERS = 131_072  # "0000042," is 8 bytes: 1 MiB
PIECE_BYTES = 64 * 1024  # executors/base.py MAX_LINE_BYTES
INVALID_UTF8 = b"invalid utf-8: \xff\xfe, a cut sequence \xe2\x82 and a stray \x80 byte"
INVALID_SHOWN = "invalid utf-8: \ufffd\ufffd, a cut sequence \ufffd and a stray \ufffd byte"
LAST_LINE = "the last line has no trailing newline"
PAGE = 200  # the API's largest page of logs

SCRIPT = """\
import sys
out = open(sys.stdout.fileno(), "wb", buffering=1 << 16, closefd=False)
err = sys.stderr.buffer
for i in range({lines}):
    out.write(b"out %d {padding}\\n" % i)
    if i % {every} == 0:
        out.flush()
        err.write(b"err %d\\n" % i)
        err.flush()
    if i == {long_at}:
        out.write(b"".join(b"%07d," % k for k in range({numbers})) + b"\\n")
    if i == {invalid_at}:
        out.write({invalid!r} + b"\\n")
out.write({last!r})
out.flush()
"""


def script_for(lines: int) -> str:
    return SCRIPT.format(
        lines=lines,
        padding=PADDING,
        every=STDERR_EVERY,
        long_at=lines // 3,
        numbers=LONG_LINE_NUMBERS,
        invalid_at=2 * lines // 3,
        invalid=INVALID_UTF8,
        last=LAST_LINE.encode(),
    )


def long_line_pieces() -> list[str]:
    """The 1 MiB line as it must be logged: 64 KiB pieces, all but the last marked."""
    line = "".join(f"{k:07d}," for k in range(LONG_LINE_NUMBERS))
    pieces = [line[at : at + PIECE_BYTES] for at in range(0, len(line), PIECE_BYTES)]
    return [piece + " [line continues]" for piece in pieces[:-1]] + pieces[-1:]


def expected_streams(lines: int) -> dict[str, list[str]]:
    """Each stream's lines, in the order the script prints them."""
    stdout: list[str] = []
    for i in range(lines):
        stdout.append(f"out {i} {PADDING}")
        if i == lines // 3:
            stdout.extend(long_line_pieces())
        if i == 2 * lines // 3:
            stdout.append(INVALID_SHOWN)
    stdout.append(LAST_LINE)
    return {"stdout": stdout, "stderr": [f"err {i}" for i in range(0, lines, STDERR_EVERY)]}


# --- reading 200,000 logs back ---------------------------------------------------------------


def _page(client: httpx.Client, run_id: str, limit=PAGE, sort="TIMESTAMP_ASC", **stamp) -> list:
    logs = {"flow_run_id": {"any_": [run_id]}, **({"timestamp": stamp} if stamp else {})}
    response = client.post("/logs/filter", json={"logs": logs, "sort": sort, "limit": limit})
    response.raise_for_status()
    return response.json()


def _wait_until_all_arrived(client: httpx.Client, run_id: str) -> None:
    """Logs are shipped in order, one batch after the other, and the API stores them at
    its own pace (here under 1,000 a second): once the flow's own last line is in, every
    batch before it is too. Give up only when nothing new has come for 30 s."""
    newest_id, progress_at = None, time.monotonic()
    while True:
        newest = _page(client, run_id, limit=5, sort="TIMESTAMP_DESC")
        if any(log["message"].startswith("Finished in state") for log in newest):
            return
        if newest and newest[0]["id"] != newest_id:
            newest_id, progress_at = newest[0]["id"], time.monotonic()
        assert time.monotonic() - progress_at < 30, "no new logs reached the API for 30 s"
        time.sleep(1)


def _all_logs(client: httpx.Client, run_id: str) -> list[dict]:
    """Every log of the run, in the API's order. Keyset paging, as offsets are not stable
    over ties: each page starts at the last timestamp seen, whose logs come again and are
    skipped by id. (Pages read at once are no faster: the API's one process is the limit.)"""
    logs: list[dict] = []
    seen: set[str] = set()
    stamp: dict[str, str] = {}
    while True:
        page = _page(client, run_id, **stamp)
        new = [log for log in page if log["id"] not in seen]
        seen.update(log["id"] for log in new)
        logs.extend(new)
        if len(page) < PAGE:
            return logs
        assert new, f"over {PAGE} logs share the timestamp {stamp}: cannot page past them"
        stamp = {"after_": page[-1]["timestamp"]}


def _stamp(log: dict) -> datetime:
    return datetime.fromisoformat(log["timestamp"])


# --- the checks ------------------------------------------------------------------------------


def check_no_lost_output(name: str, record: dict, lines: int, tag: str, run_s: float) -> None:
    with httpx.Client(base_url=PREFECT_API_URL.value(), timeout=120) as client:
        started = time.monotonic()
        _wait_until_all_arrived(client, record["run_id"])
        waited_s = time.monotonic() - started
        every_log = _all_logs(client, record["run_id"])
        read_s = time.monotonic() - started - waited_s
    logs = [log for log in every_log if SCRIPT_LINE.match(log["message"])]
    expected = expected_streams(lines)
    prefixes = {stream: f"[{tag}{stream}] " for stream in expected}
    printed_at = {(s, line): i for s, stream in expected.items() for i, line in enumerate(stream)}

    pieces = set(long_line_pieces())
    stamps = [_stamp(log) for log in logs]
    assert stamps == sorted(stamps), "the API did not return the logs sorted by timestamp"
    tied = sum(n for n in Counter(stamps).values() if n > 1)
    parsed = [_stream_and_line(log["message"], prefixes) for log in logs]
    # Ties in timestamp come in no promised order: put them in the order of printing.
    order = sorted(range(len(logs)), key=lambda i: (stamps[i], printed_at.get(parsed[i], -1)))
    got: dict[str, list[str]] = {stream: [] for stream in expected}
    for i in order:
        stream, line = parsed[i]
        got[stream].append(line)

    counts = {
        "script_lines": lines,
        "expected_log_lines": sum(len(stream) for stream in expected.values()),
        "record_log_lines": record["log_lines"],
        "api_script_lines": len(logs),
        "api_stdout_lines": len(got["stdout"]),
        "api_stderr_lines": len(got["stderr"]),
        "api_long_line_pieces": sum(line in pieces for line in got["stdout"]),
        "api_lines_with_replacement_char": sum("\ufffd" in line for line in got["stdout"]),
        "logs_sharing_a_timestamp": tied,
        "run_s": round(run_s, 1),
        "wait_for_api_s": round(waited_s, 1),
        "read_back_s": round(read_s, 1),
    }
    report(name, counts)
    assert record["status"] == "SUCCESS", record["error"]
    for stream, lines_printed in expected.items():
        missing = Counter(lines_printed) - Counter(got[stream])
        extra = Counter(got[stream]) - Counter(lines_printed)
        assert not missing and not extra, (stream, _sample(missing), _sample(extra))
        assert got[stream] == lines_printed, f"{stream} lines are out of order"
    assert record["log_lines"] == len(logs) == counts["expected_log_lines"], (
        f"the executor counted {record['log_lines']} lines, the API holds {len(logs)}, "
        f"the script printed {counts['expected_log_lines']}"
    )


def _stream_and_line(message: str, prefixes: dict[str, str]) -> tuple[str, str]:
    for stream, prefix in prefixes.items():
        if message.startswith(prefix):
            return stream, message[len(prefix) :]
    raise AssertionError(f"a script line of another run or server: {message[:80]!r}")


def _sample(lines: Counter) -> str:
    return f"{len(lines)} lines, e.g. {[line[:60] for line in list(lines)[:3]]}"


@pytest.fixture
def script_lines_only_to_the_api(monkeypatch):
    """The run's lines still go to Prefect's API handler, on the flow-run logger itself,
    but not on to the root logger's console handler and pytest's capture, which would print
    and hold 200,000 lines and make the run three times slower."""
    monkeypatch.setattr(logging.getLogger("prefect.flow_runs"), "propagate", False)


@pytest.mark.timeout(900)
def test_many_lines_in_docker_all_reach_the_api_in_order(
    postgres_api, docker_client, script_lines_only_to_the_api
):
    # On the PostgreSQL-backed server: Prefect on SQLite stores logs at under 1,000 a
    # second here, which made this one run cost minutes of waiting for the server.
    script = json.dumps(script_for(DOCKER_LINES))
    with temporary_settings({PREFECT_API_URL: postgres_api}):
        started = time.monotonic()
        _, record = run_flow(
            event_from(f"name: rel-output-docker\ntype: python\nscript: {script}\n")
        )
        run_s = time.monotonic() - started
        check_no_lost_output("no_lost_output_docker", record, DOCKER_LINES, "", run_s)


@pytest.mark.timeout(600)
def test_many_lines_over_ssh_all_reach_the_api_in_order(ssh_server, script_lines_only_to_the_api):
    ssh_server("rel-output-ssh")
    script = json.dumps(script_for(SSH_LINES))
    started = time.monotonic()
    _, record = run_flow(
        event_from(
            "name: rel-output-ssh\ntype: python\nrun_location: remote\n"
            f'servers: ["rel-output-ssh"]\nscript: {script}\n'
        )
    )
    run_s = time.monotonic() - started
    check_no_lost_output("no_lost_output_ssh", record, SSH_LINES, "rel-output-ssh ", run_s)


SHORT_RUNS = size(ci=100, full=500)  # each run is a whole flow run: ~1 CPU-s
SHORT_AT_ONCE = 8
SHORT_SCRIPT = 'echo first\necho "input $(cronium_input)"\necho third >&2\necho fourth\n'


async def _short_runs(event) -> list:
    from cronium_prefect.flows import cronium_event

    gate = asyncio.Semaphore(SHORT_AT_ONCE)

    async def one(i: int):
        async with gate:
            return await cronium_event(event=event, input=i, return_state=True)

    return await asyncio.gather(*(one(i) for i in range(SHORT_RUNS)))


def _script_lines_of_finished(client: httpx.Client, run_id: str, deadline: float) -> list[str]:
    while True:
        logs = _page(client, run_id)
        if any(log["message"].startswith("Finished in state") for log in logs):
            return [log["message"] for log in logs if SCRIPT_LINE.match(log["message"])]
        assert time.monotonic() < deadline, f"run {run_id}'s logs did not all arrive"
        time.sleep(0.2)


@pytest.mark.timeout(900)
def test_short_docker_runs_log_each_line_exactly_once(
    postgres_api, docker_client, script_lines_only_to_the_api
):
    """A run's first line comes right as its container starts. Attached with `logs=True`,
    the daemon's replay of the container's log could overlap the live stream and log that
    line twice (seen once in CI): every run's lines must be exactly the lines printed."""
    event = event_from(f"name: rel-short\ntype: bash\nscript: {json.dumps(SHORT_SCRIPT)}\n")
    with temporary_settings({PREFECT_API_URL: postgres_api}):
        started = time.monotonic()
        states = asyncio.run(_short_runs(event))
        run_s = time.monotonic() - started
        run_ids = [str(state.state_details.flow_run_id) for state in states]
        deadline = time.monotonic() + 120
        with httpx.Client(base_url=postgres_api, timeout=30) as client:
            logged = [_script_lines_of_finished(client, i, deadline) for i in run_ids]
    wrong = {
        run_id: lines
        for i, (run_id, lines) in enumerate(zip(run_ids, logged, strict=True))
        if sorted(lines)
        != sorted(["[stdout] first", f"[stdout] input {i}", "[stderr] third", "[stdout] fourth"])
        or [line for line in lines if line.startswith("[stdout]")]
        != ["[stdout] first", f"[stdout] input {i}", "[stdout] fourth"]
    }
    report(
        "short_runs_exact_lines",
        {
            "runs": SHORT_RUNS,
            "completed": sum(state.name == "Completed" for state in states),
            "runs_with_wrong_lines": len(wrong),
            "lines_twice": sum(len(lines) - len(set(lines)) for lines in logged),
            "seconds": round(run_s, 1),
        },
    )
    assert all(state.name == "Completed" for state in states), {s.name for s in states}
    assert not wrong, (
        f"{len(wrong)} runs logged other lines than printed, e.g. {list(wrong.items())[:3]}"
    )


def test_a_logger_that_falls_behind_loses_no_line_at_the_end(docker_client, tmp_path):
    """A busy worker logs lines slower than a script prints them. Read at the pace of
    logging, the attach stream held the output back in dockerd, which keeps it for a
    client that falls behind only so long after the container exits (once in CI, a busy
    run lost its last 128 of 20,000 lines). The executor now drains dockerd on a thread of
    its own into a bounded backlog: a logger 0.2 ms a line behind a script that prints
    1 MB at once and exits must still get every line, in order."""
    from cronium_prefect.executors.base import ExecutionRequest, Limits
    from cronium_prefect.executors.docker import DockerExecutor
    from cronium_prefect.runtime_helpers.host import Staging
    from cronium_prefect.settings import get_settings

    lines = 20_000
    script = (  # in one write: the container is done at once, all still to be read
        f'import sys\nsys.stdout.write("".join("line %d {PADDING}\\n" % i for i in range({lines})))\n'
    )
    staging = Staging.create(tmp_path / "runs", "python", script, None, {"name": "slow"}, {})
    seen: list[str] = []

    def slow_logger(stream: str, line: str) -> None:
        time.sleep(0.0002)  # the pace under test: a busy worker's logging, not a wait
        seen.append(line)

    settings = get_settings()
    request = ExecutionRequest(
        run_id="slow-logger",
        language="python",
        staging=staging,
        timeout=120,
        on_line=slow_logger,
        image=TEST_IMAGE,
        limits=Limits(
            memory=settings.default_memory,
            cpus=settings.default_cpus,
            pids=settings.default_pids,
            network="none",
            tmpfs_size=settings.tmpfs_size,
        ),
    )
    result = DockerExecutor(docker_client).run(request)
    assert result.exit_code == 0, result.error
    assert seen == [f"line {i} {PADDING}" for i in range(lines)], f"{lines - len(seen)} lost"
