"""Helpers for the workflow tests: the probe events, apply, trigger and read back."""

from __future__ import annotations

import asyncio
import json
import textwrap
import time

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags

from cronium_prefect.flows.report import read_record
from cronium_prefect.names import STEP_TAG, WORKFLOW_TAG

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


def apply_with_probes(tmp_path, ssh_server, text: str) -> None:
    """Apply the probe events and the workflows in `text`."""
    ssh_server("wf-ssh")
    folder = tmp_path / "defs"
    folder.mkdir(exist_ok=True)
    (folder / "probe.yaml").write_text(PROBE)
    (folder / "wf.yaml").write_text(textwrap.dedent(text))
    done = cronium("apply", str(folder))
    assert done.returncode == 0, done.stderr


def trigger_wait(name: str, input: object = None) -> tuple[int, dict]:
    """`cronium trigger NAME --wait --json`: exit code and record."""
    args = ["trigger", name, "--wait", "--json"]
    if input is not None:
        args += ["--input", json.dumps(input)]
    done = cronium(*args, timeout=300)
    assert done.stdout, done.stderr
    return done.returncode, json.loads(done.stdout)


def steps_of(record: dict) -> dict[str, dict]:
    return {s["name"]: s for s in record["steps"]}


def parent_of(run_id: str) -> str:
    """The flow run a run is a subflow of (through its parent task run)."""

    async def read():
        async with get_client() as client:
            run = await client.read_flow_run(run_id)
            task_run = await client.read_task_run(run.parent_task_run_id)
            return str(task_run.flow_run_id)

    return asyncio.run(read())


def child_record(run_id: str) -> dict:
    async def read():
        async with get_client() as client:
            return (await read_record(client, run_id)).to_json()

    return asyncio.run(read())


def step_runs(workflow: str, step: str | None = None) -> list:
    """The runs of a workflow's steps (of one step, with `step`), by their tags."""
    tags = [f"{WORKFLOW_TAG}{workflow}"] + ([f"{STEP_TAG}{step}"] if step else [])

    async def read():
        async with get_client() as client:
            return await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=tags))
            )

    return asyncio.run(read())


def wait_for(check, what: str, timeout: float = 120):
    """`check()`'s first truthy value, asked every 0.5 s."""
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)
    return found


def workflow_page(name: str, tmp_path, monkeypatch):
    """The dashboard's page of workflow `name`, rendered by Streamlit's AppTest (the
    Workflows page first: the page a user comes from)."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from cronium_prefect.dashboard.launch import APP

    st.cache_data.clear()
    st.cache_resource.clear()
    monkeypatch.setenv(
        "PREFECT_SERVER_DATABASE_CONNECTION_URL", f"sqlite+aiosqlite:///{tmp_path}/d.db"
    )
    app = AppTest.from_file(str(APP), default_timeout=60)
    app.run()
    app.switch_page("app_pages/workflows.py").run()
    assert not app.exception and not app.error, [e.value for e in app.error]
    listed = app.dataframe[0].value
    assert f"workflow?name={name}" in list(listed["workflow"])
    app.query_params["name"] = name
    app.switch_page("app_pages/workflow.py").run()
    assert not app.exception and not app.error, [e.value for e in app.error]
    return app


def graph_node(app, step: str) -> str:
    """The DOT line of `step` in the page's graph."""
    (chart,) = app.get("graphviz_chart")
    return next(x for x in chart.proto.spec.splitlines() if x.startswith(f'"{step}" ['))
