"""Generated invalid definitions (tests/reliability/fuzz_cases.py): each one is a clear
error naming the file and the field, `cronium run` and `apply` exit 2 without a
traceback, and a batch with one bad file writes nothing."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from cronium_prefect import InvalidEvent
from cronium_prefect.loader import load_file

from .fuzz_cases import BASE, cases
from .report import report

CASES = cases()


def test_there_are_at_least_200_distinct_cases():
    assert len(CASES) >= 200 and len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize(("case", "raw", "fragments"), CASES, ids=[c[0] for c in CASES])
def test_the_loader_refuses_it_naming_file_and_field(tmp_path, case, raw, fragments):
    path = tmp_path / f"{case}.yaml"
    path.write_bytes(raw)
    with pytest.raises(InvalidEvent) as refused:
        load_file(path)
    message = str(refused.value)
    assert str(path) in message, message
    for fragment in fragments:
        assert fragment in message, message


def test_cronium_run_exits_2_without_a_traceback_for_every_case(tmp_path):
    from cronium_prefect.cli import app

    runner = CliRunner()
    outcomes = {"cases": len(CASES), "exit_2": 0, "tracebacks": 0, "other": []}
    for case, raw, _ in CASES:
        path = tmp_path / f"{case}.yaml"
        path.write_bytes(raw)
        result = runner.invoke(app, ["run", str(path)])
        crashed = result.exception is not None and not isinstance(result.exception, SystemExit)
        outcomes["tracebacks"] += crashed or "Traceback" in result.output
        if result.exit_code == 2 and not crashed:
            outcomes["exit_2"] += 1
        else:
            outcomes["other"].append((case, result.exit_code, repr(result.exception)))
    report("fuzzed_definitions_run", outcomes)
    assert outcomes["exit_2"] == len(CASES) and outcomes["tracebacks"] == 0, outcomes["other"]


@pytest.mark.parametrize(
    "case", ["yaml-bomb", "encoding-1", "deep-nesting-map", "huge-file", "retries-wrong-5"]
)
def test_the_real_command_line_says_so_in_one_message(tmp_path, case):
    raw = next(r for c, r, _ in CASES if c == case)
    path = tmp_path / f"{case}.yaml"
    path.write_bytes(raw)
    done = subprocess.run(
        [sys.executable, "-m", "cronium_prefect.cli", "run", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and str(path) in done.stderr


def _deployment_names() -> set[str]:
    from prefect.client.orchestration import get_client

    async def read():
        async with get_client() as client:
            return {d.name for d in await client.read_deployments(limit=200)}

    return asyncio.run(read())


BATCH_BAD = [
    "name-wrong-4",
    "schedule.cron-bad-0",
    "timeout-wrong-0",
    "typo-scirpt",
    "encoding-0",
    "yaml-bomb",
    "action-unknown trigger",
    "duplicate-name-in-file",
]


def test_a_batch_with_one_invalid_file_writes_nothing(prefect_api, tmp_path):
    from cronium_prefect.cli import app

    runner = CliRunner()
    written = 0
    for index, bad in enumerate(BATCH_BAD):
        folder = tmp_path / f"batch-{index}"
        folder.mkdir()
        good = [f"fb-{index}-{n}" for n in range(3)]
        for name in good:
            body = {k: v for k, v in BASE.items() if k != "actions"} | {"name": name}
            (folder / f"{name}.yaml").write_text(json.dumps(body))
        (folder / "zz-bad.yaml").write_bytes(next(r for c, r, _ in CASES if c == bad))
        before = _deployment_names()
        result = runner.invoke(app, ["apply", str(folder)])
        assert result.exit_code == 2, (bad, result.output)
        assert "zz-bad.yaml" in result.output, (bad, result.output)
        written += len(_deployment_names() - before)
    report("fuzzed_definitions_apply", {"batches": len(BATCH_BAD), "deployments_written": written})
    assert written == 0
