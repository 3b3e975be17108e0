"""Reading back what a script left in out/ is bounded on both backends: a FIFO, a link, a
sparse file, thousands of empty files, a deep directory tree and a flood of variables are
each refused quickly with a clear error (nothing opened that is not a regular file, the
sum never written to the worker's disk), the run's directory is removed, and a run beside
them is unharmed."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from cronium_prefect import parse_text
from cronium_prefect.blocks.variable_store import get_variable_store
from tests.integration.helpers import record_json, runs_at_once
from tests.processes import settles
from tests.sshd import run_directories

from .report import report

# (case, script, a fragment of the error; a tuple: any of them)
CASES = [
    ("output is a FIFO", 'mkfifo "$CRONIUM_DIR/out/output.json"', "is not a regular file"),
    ("condition is a FIFO", 'mkfifo "$CRONIUM_DIR/out/condition"', "is not a regular file"),
    (
        "a variable is a FIFO",
        'mkdir -p "$CRONIUM_DIR/out/vars" && mkfifo "$CRONIUM_DIR/out/vars/PIPE.json"',
        "is not a regular file",
    ),
    (
        "output links to /dev/zero",
        'ln -s /dev/zero "$CRONIUM_DIR/out/output.txt"',
        "is a link; links are never followed",
    ),
    (
        "100 GB sparse output",
        'truncate -s 100G "$CRONIUM_DIR/out/output.json"',
        ("over the limit", "bytes into its output directory"),
    ),
    (
        "5,000 empty files",
        'cd "$CRONIUM_DIR/out" && seq 5000 | xargs touch',
        ("more than 1000 entries", "over 1000 files and directories"),
    ),
    (
        "a directory tree 1,500 deep",
        # One mkdir of one long path: a loop of `mkdir d && cd d` took ~50 s of the kernel's
        # time on its own (each step deeper costs more), over the run's timeout in CI.
        'cd "$CRONIUM_DIR/out" && mkdir -p "$(printf \'d/%.0s\' $(seq 1500))"',
        ("more than 1000 entries", "over 1000 files and directories"),
    ),
    (
        "vars replaced by a link to 3,000 files elsewhere",
        # A directory of its own (/tmp/x may be another SSH user's, from another run).
        'x=$(mktemp -d) && (cd "$x" && seq 3000 | xargs touch) && '
        'rm -rf "$CRONIUM_DIR/out/vars" && ln -s "$x" "$CRONIUM_DIR/out/vars"',
        "out/vars was replaced by a link",
    ),
    (
        "150 variables",
        'for i in $(seq 150); do cronium_setVariable "FLOOD_$i" "$i"; done',
        "wrote 150 variables, over the limit of 100",
    ),
]


def _event(name: str, script: str, server: str | None):
    where = f'run_location: remote\nservers: ["{server}"]\n' if server else ""
    (event,) = parse_text(
        f"name: {name}\ntype: bash\ntimeout: 2m\n{where}script: {json.dumps(script)}\n"
    )
    return event


@pytest.mark.parametrize("where", ["docker", "ssh", "ssh-exec"])
def test_collection_refuses_each_family_quickly_and_harms_no_one(
    stack, ssh_server, request, where, tmp_path
):
    """`ssh-exec`: a server without SFTP, whose files go over exec channels."""
    remote = where != "docker"
    server = f"rel-collect-{where}" if remote else None
    if where == "ssh":
        ssh_server(server)
    elif where == "ssh-exec":
        ssh_server(server, target=request.getfixturevalue("sshd_without_sftp"))
    neighbour = _event(f"rel-col-{where}-ok", "sleep 2; cronium_output 7", server)
    events = [
        _event(f"rel-col-{where}-{i}", f"{script}\nexit 0", server)
        for i, (_, script, _) in enumerate(CASES)
    ]
    began = time.monotonic()
    states = asyncio.run(runs_at_once([(e, None) for e in [neighbour, *events]]))
    took = time.monotonic() - began
    records = [record_json(s.result(raise_on_failure=False)) for s in states]
    neighbour_record, *outcomes = records
    assert neighbour_record["status"] == "SUCCESS" and neighbour_record["output"] == 7
    seen = {}
    for (case, _, expected), record in zip(CASES, outcomes, strict=True):
        seen[case] = record["error"]
        assert record["status"] == "FAILURE", (case, record)
        fragments = expected if isinstance(expected, tuple) else (expected,)
        assert any(f in (record["error"] or "") for f in fragments), (case, record["error"])
    # Nothing was saved of the flood.
    assert get_variable_store().get("FLOOD_1") is None
    if remote:  # every run's remote directory removed
        assert settles(lambda: run_directories() == [], 10), run_directories()
    report(
        f"bounded_collection_{where}",
        {"cases": len(CASES), "seconds": round(took, 1), "errors": seen},
    )
    # A hang would have shown as the 2 min timeout (TIMEOUT, not the FAILURE above).
