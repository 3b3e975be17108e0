"""Workflows through the real worker and Docker: each step a linked run of its event.

The diamond's B and C overlap in time (each records when it started and ended), D gets
both outputs; a failure branch and an always-cleanup step; `join: any`; fail_fast and
continue; for_each with max_parallel (never more at once, outputs in order)."""

from __future__ import annotations

import asyncio
import json
import textwrap
import uuid

from prefect.client.orchestration import get_client

from cronium_prefect.flows.report import read_record

from .test_apply import cronium

# Each run of `wf-probe` (Docker) sleeps its input's `sleep` seconds and returns when it
# ran (`ran`: start and end on the worker's clock), what it got and its `value`; with
# `fail: true` it exits 1.
PROBE = """\
name: wf-probe
type: python
status: active
overlap: allow
script: |
  import json, time, cronium
  got = cronium.input() or {}
  start = time.time()
  time.sleep(got.get("sleep", 0))
  if got.get("fail"):
      raise SystemExit(1)
  cronium.output({"ran": [start, time.time()], "got": got, "value": got.get("value")})
---
# Over SSH on this machine: marks `me` as started in `dir`, then waits (at most 60 s) for
# `other` to have started too. Both succeed only if they ran at the same time.
name: wf-meet
type: python
status: active
overlap: allow
run_location: remote
servers: [wf-ssh]
script: |
  import os, time, cronium
  got = cronium.input()
  os.makedirs(got["dir"], exist_ok=True)
  open(os.path.join(got["dir"], got["me"]), "w").close()
  deadline = time.time() + 60
  while not os.path.exists(os.path.join(got["dir"], got["other"])):
      if time.time() > deadline:
          raise SystemExit("never met " + got["other"])
      time.sleep(0.1)
  cronium.output({"me": got["me"], "value": got["value"]})
"""


def _apply(tmp_path, text: str) -> None:
    folder = tmp_path / "defs"
    folder.mkdir(exist_ok=True)
    (folder / "probe.yaml").write_text(PROBE)
    (folder / "wf.yaml").write_text(textwrap.dedent(text))
    done = cronium("apply", str(folder))
    assert done.returncode == 0, done.stderr


def _trigger(name: str, input: object = None) -> tuple[int, dict]:
    args = ["trigger", name, "--wait", "--json"]
    if input is not None:
        args += ["--input", json.dumps(input)]
    done = cronium(*args, timeout=300)
    assert done.stdout, done.stderr
    return done.returncode, json.loads(done.stdout)


def _steps(record: dict) -> dict[str, dict]:
    return {s["name"]: s for s in record["steps"]}


def _parent_of(run_id: str) -> str:
    """The flow run a run is a subflow of (through its parent task run)."""

    async def read():
        async with get_client() as client:
            run = await client.read_flow_run(run_id)
            task_run = await client.read_task_run(run.parent_task_run_id)
            return str(task_run.flow_run_id)

    return asyncio.run(read())


def _child_record(run_id: str) -> dict:
    async def read():
        async with get_client() as client:
            return (await read_record(client, run_id)).to_json()

    return asyncio.run(read())


def test_a_diamond_runs_b_and_c_at_once_and_d_gets_both_outputs(worker, ssh_server, tmp_path):
    ssh_server("wf-ssh")
    _apply(
        tmp_path,
        """\
        kind: workflow
        name: wf-diamond
        status: active
        steps:
          - name: a
            event: wf-probe
            input: {value: "{{ input.start }}"}
          - name: b
            event: wf-meet
            needs: [a]
            input: {me: b, other: c, dir: "{{ input.dir }}", value: "{{ steps.a.output.value + 1 }}"}
          - name: c
            event: wf-meet
            needs: [a]
            input: {me: c, other: b, dir: "{{ input.dir }}", value: "{{ steps.a.output.value * 10 }}"}
          - name: d
            event: wf-probe
            needs: [b, c]
            input: {value: ["{{ steps.b.output.value }}", "{{ steps.c.output.value }}"]}
        """,
    )
    meeting = f"/tmp/wf-meet-{uuid.uuid4().hex}"
    code, record = _trigger("wf-diamond", {"start": 4, "dir": meeting})
    assert code == 0, json.dumps(record, indent=1)
    assert record["status"] == "SUCCESS" and record["workflow"] == "wf-diamond"
    steps = _steps(record)
    assert [s["status"] for s in steps.values()] == ["SUCCESS"] * 4
    assert steps["a"]["output"]["value"] == 4
    assert steps["b"]["output"]["value"] == 5 and steps["c"]["output"]["value"] == 40
    assert steps["d"]["output"]["value"] == [5, 40]  # native values, not text
    assert record["output"] == {"d": steps["d"]["output"]}
    # Each step is a run of its event, started by the workflow as its subflow.
    child = _child_record(steps["d"]["run_ids"][0])
    assert child["event"] == "wf-probe" and child["trigger"] == "workflow"
    assert _parent_of(steps["d"]["run_ids"][0]) == record["run_id"]
