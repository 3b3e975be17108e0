"""Scripts abusing the helper protocol: links planted in out/ toward host files, a FIFO,
files over the limits, bad keys, non-JSON output, the helpers deleted, another run's
files looked for. Each is a clear error (or nothing happens), the host file is never
read, and a run beside them is unaffected."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import pytest

from cronium_prefect import parse_text
from cronium_prefect.event import Event
from tests.integration.helpers import record_json

from .report import report

SECRET_TEXT = f"host-only-{uuid.uuid4().hex}"

# (case, script, expected status, fragment of the run's error or of its log, or a
# tuple of fragments any of which will do)
CASES = [
    (
        "output links to a host file",
        'ln -s {marker} "$CRONIUM_DIR/out/output.json"',
        "FAILURE",
        "output.json is a link; links are never followed",
    ),
    (
        "text output links to a host file",
        'ln -s {marker} "$CRONIUM_DIR/out/output.txt"',
        "FAILURE",
        "output.txt is a link; links are never followed",
    ),
    (
        "vars replaced by a link",
        'rm -rf "$CRONIUM_DIR/out/vars"; ln -s {marker_dir} "$CRONIUM_DIR/out/vars"',
        "FAILURE",
        "out/vars was replaced by a link",
    ),
    (
        "a variable links to a host file",
        'mkdir -p "$CRONIUM_DIR/out/vars" && ln -s {marker} "$CRONIUM_DIR/out/vars/STOLEN.json"',
        "FAILURE",
        "STOLEN.json is a link; links are never followed",
    ),
    (
        "condition is a FIFO",
        'mkfifo "$CRONIUM_DIR/out/condition"',
        "FAILURE",
        "condition is not a regular file",
    ),
    (
        "10 MB variable through the helper",
        "python3 -c \"import cronium; cronium.setVariable('BIG', 'x' * 10_000_000)\"",
        "FAILURE",
        "over the limit of 10000",
    ),
    (
        "10 MB variable written directly",
        'mkdir -p "$CRONIUM_DIR/out/vars" && head -c 10000000 /dev/zero | tr "\\0" x > "$CRONIUM_DIR/out/vars/BIG.txt"',
        "FAILURE",
        # Which guard speaks first is a race: the collector reading the file, or the
        # watcher stopping the container as out/ passes 4 MiB. Both refuse it clearly.
        (
            "variable BIG is 10000000 bytes, over the limit",
            "bytes into its output directory (limit 4194304); it was stopped",
        ),
    ),
    (
        "invalid key",
        "python3 -c \"import cronium; cronium.setVariable('bad-key', 1)\"",
        "FAILURE",
        "bad-key",
    ),
    (
        "invalid key written directly",
        'mkdir -p "$CRONIUM_DIR/out/vars" && echo 1 > "$CRONIUM_DIR/out/vars/lower.json"',
        "FAILURE",
        "lower",
    ),
    (
        "non-JSON output",
        "echo '{{not json' > \"$CRONIUM_DIR/out/output.json\"",
        "FAILURE",
        "output",
    ),
    (
        "helpers deleted",
        'rm -rf "$CRONIUM_DIR/lib" 2>&1; cronium_output 7',
        "SUCCESS",
        "Read-only file system",
    ),
    (
        "another run's files looked for",
        "find / -name 'cronium-neighbour-*' 2>/dev/null | grep . && exit 9 || echo none found",
        "SUCCESS",
        "none found",
    ),
]


@pytest.fixture
def marker():
    folder = Path("/var/tmp") / f"cronium-abuse-{uuid.uuid4().hex}"
    folder.mkdir()
    (folder / "secret.txt").write_text(SECRET_TEXT)
    (folder / "STOLEN.json").write_text(json.dumps(SECRET_TEXT))
    yield folder
    for path in folder.iterdir():
        path.unlink()
    folder.rmdir()


def _event(name: str, script: str) -> Event:
    (event,) = parse_text(f"name: {name}\ntype: bash\nscript: {json.dumps(script)}\n")
    return event


def test_helper_abuse_is_refused_clearly_and_harms_no_one(stack, marker):
    from tests.integration.helpers import logs_of, runs_at_once

    neighbour = f"cronium-neighbour-{uuid.uuid4().hex}"

    async def everything():
        normal = _event(
            "abuse-neighbour",
            f'touch "$CRONIUM_DIR/out/{neighbour}" /tmp/{neighbour}; sleep 3; cronium_output 42',
        )
        abusive = [
            _event(f"abuse-{i}", script.format(marker=marker / "secret.txt", marker_dir=marker))
            for i, (_, script, _, _) in enumerate(CASES)
        ]
        states = await runs_at_once([(event, None) for event in [normal, *abusive]])
        results = [await state.result(raise_on_failure=False) for state in states]
        return [record_json(r) for r in results]

    neighbour_record, *records = asyncio.run(everything())
    outcomes = []
    for (case, _, _status, fragment), record in zip(CASES, records, strict=True):
        logs = "\n".join(logs_of(record["run_id"]))
        outcomes.append(
            {
                "case": case,
                "status": record["status"],
                "clear": any(
                    text in (record["error"] or "") or text in logs
                    for text in ((fragment,) if isinstance(fragment, str) else fragment)
                ),
                "host_file_read": SECRET_TEXT in json.dumps(record) or SECRET_TEXT in logs,
            }
        )
    report("helper_abuse", {"cases": len(CASES), "outcomes": outcomes})
    for outcome, (case, _, status, _), record in zip(outcomes, CASES, records, strict=True):
        assert outcome["status"] == status, (case, record["error"])
        assert outcome["clear"], (case, record["error"])
        assert not outcome["host_file_read"], case
    assert neighbour_record["status"] == "SUCCESS" and neighbour_record["output"] == 42
