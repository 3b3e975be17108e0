"""Stopping and resuming workflow runs through the real worker and Docker: a cancel stops
the running steps (no container left) and starts nothing more; `cronium retry --failed`
runs only the failed and not-started steps; a step of a paused, deleted or archived event,
or whose input is over the template sandbox's limits, fails there, clearly."""

from __future__ import annotations

import asyncio
import json

from prefect.client.orchestration import get_client
from prefect.states import Cancelling

from cronium_prefect.executors.docker import RUN_LABEL

from .test_apply import cronium
from .workflow_runs import (
    apply_with_probes,
    graph_node,
    step_runs,
    steps_of,
    trigger_wait,
    wait_for,
    workflow_page,
)


def test_cancelling_a_workflow_run_stops_its_running_steps_and_starts_nothing_more(
    worker, ssh_server, docker_client, tmp_path, monkeypatch
):
    apply_with_probes(
        tmp_path,
        ssh_server,
        """\
        kind: workflow
        name: wf-cancel
        status: active
        steps:
          - {name: one, event: wf-probe, input: {sleep: 300}}
          - {name: two, event: wf-probe, input: {sleep: 300}}
          - {name: after, event: wf-probe, needs: [one]}
        """,
    )
    done = cronium("trigger", "wf-cancel", "--json")
    assert done.returncode == 0, done.stderr
    run_id = json.loads(done.stdout)["run_id"]

    def both_running():
        runs = step_runs("wf-cancel")
        running = [r for r in runs if r.state and r.state.is_running()]
        return running if len(running) == 2 else None

    children = wait_for(both_running, "both steps to run")
    wait_for(
        lambda: len(docker_client.containers.list(filters={"label": RUN_LABEL})) >= 2,
        "both steps' containers",
    )
    # Meanwhile its dashboard page follows it (and refreshes itself while it runs).
    import streamlit as st

    try:
        app = workflow_page("wf-cancel", tmp_path, monkeypatch)
        assert any(h.value == "Latest run: RUNNING" for h in app.subheader), app.subheader
        assert "\\nrunning" in graph_node(app, "one") and "\\nrunning" in graph_node(app, "two")
        assert "\\npending" in graph_node(app, "after"), graph_node(app, "after")
    finally:
        st.cache_resource.clear()

    async def cancel():
        async with get_client() as client:
            await client.set_flow_run_state(run_id, Cancelling(message="test"), force=True)

    asyncio.run(cancel())

    async def read(flow_run_id):
        async with get_client() as client:
            return await client.read_flow_run(flow_run_id)

    run = wait_for(
        lambda: (r := asyncio.run(read(run_id))).state.is_final() and r, "the run to end", 60
    )
    assert run.state.type.value == "CANCELLED", run.state
    for child in children:
        ended = wait_for(
            lambda c=child: (r := asyncio.run(read(c.id))).state.is_final() and r,
            "a step's run to end",
            60,
        )
        assert ended.state.type.value == "CANCELLED", ended.state
    ids = {str(c.id) for c in children}
    left = [
        c
        for c in docker_client.containers.list(all=True, filters={"label": RUN_LABEL})
        if c.labels.get(RUN_LABEL) in ids
    ]
    assert not left, [c.name for c in left]
    assert not step_runs("wf-cancel", "after")  # its need was cancelled: never started


def test_retry_failed_runs_only_the_failed_and_not_started_steps(worker, ssh_server, tmp_path):
    apply_with_probes(
        tmp_path,
        ssh_server,
        """\
        name: wf-flaky
        type: python
        status: active
        script: |
          import cronium
          if cronium.getVariable("WF_RETRY_OK") is None:
              raise SystemExit("not yet")
          cronium.output({"got": cronium.input()})
        ---
        kind: workflow
        name: wf-retry
        status: active
        steps:
          - {name: a, event: wf-probe, input: {value: 1}}
          - {name: b, event: wf-flaky, needs: [a]}
          - {name: c, event: wf-probe, needs: [b], input: {value: "{{ steps.b.output.got.value }}"}}
        """,
    )
    code, first = trigger_wait("wf-retry")
    assert code == 1, json.dumps(first, indent=1)
    assert {n: s["status"] for n, s in steps_of(first).items()} == {
        "a": "SUCCESS",
        "b": "FAILURE",
        "c": "NOT_STARTED",
    }
    assert cronium("var", "set", "WF_RETRY_OK", "1").returncode == 0
    done = cronium("retry", first["run_id"], "--failed", "--wait", "--json", timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    second = json.loads(done.stdout)
    steps = steps_of(second)
    assert [s["status"] for s in steps.values()] == ["SUCCESS"] * 3
    assert steps["a"]["reused_from"] == first["run_id"]
    assert steps["a"]["run_ids"] == steps_of(first)["a"]["run_ids"]
    assert steps["c"]["output"]["value"] == 1  # b got a's reused output
    assert len(step_runs("wf-retry", "a")) == 1  # a ran once in all
    assert len(step_runs("wf-retry", "b")) == 2


def test_a_step_of_a_paused_deleted_or_archived_event_or_a_hostile_input_fails_there(
    worker, ssh_server, tmp_path
):
    apply_with_probes(
        tmp_path,
        ssh_server,
        """\
        name: wf-stopped
        type: bash
        status: paused
        script: echo never
        ---
        name: wf-gone
        type: bash
        status: active
        script: echo never
        ---
        name: wf-shelved
        type: bash
        status: archived
        script: echo never
        ---
        kind: workflow
        name: wf-blocked
        status: active
        on_failure: continue
        steps:
          - {name: ok, event: wf-probe}
          - {name: paused, event: wf-stopped}
          - {name: deleted, event: wf-gone}
          - {name: archived, event: wf-shelved}
          # Over the template sandbox's limits: refused as it runs, the worker unharmed.
          - {name: huge, event: wf-probe, input: {value: "{{ 'x' * 10**10 }}"}}
          - {name: long, event: wf-probe, input: "{{ range(10**8) | list }}"}
          - name: spin
            event: wf-probe
            input: "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}"
        """,
    )
    assert cronium("delete", "wf-gone").returncode == 0
    code, record = trigger_wait("wf-blocked")
    assert code == 1 and record["status"] == "PARTIAL", json.dumps(record, indent=1)
    steps = steps_of(record)
    assert steps["ok"]["status"] == "SUCCESS"
    assert steps["paused"]["status"] == "FAILURE"
    assert "event 'wf-stopped' is paused" in steps["paused"]["error"]
    assert steps["deleted"]["status"] == "FAILURE"
    assert "event 'wf-gone' does not exist" in steps["deleted"]["error"]
    assert steps["archived"]["status"] == "FAILURE"
    assert "event 'wf-shelved' is archived" in steps["archived"]["error"]
    for name in ("paused", "deleted", "archived", "huge", "long", "spin"):
        assert not steps[name]["run_ids"], steps[name]
    assert steps["huge"]["status"] == "FAILURE", steps["huge"]
    assert steps["huge"]["error"].startswith("steps.huge.input.value: refused by the sandbox")
    assert steps["long"]["status"] == "FAILURE", steps["long"]
    assert steps["long"]["error"].startswith("steps.long.input: Range too big")
    assert steps["spin"]["status"] == "FAILURE", steps["spin"]
    spin = steps["spin"]["error"]  # its CPU limit, or on busy cores the wall-clock one
    assert spin.startswith("steps.spin.input: "), spin
    assert "used more than 2 s of CPU" in spin or "took too long" in spin, spin


def test_workflows_are_listed_paused_resumed_and_deleted_like_events(prefect_api, tmp_path):
    (tmp_path / "wf.yaml").write_text(
        "name: wf-listed-step\ntype: bash\nstatus: active\nscript: 'true'\n---\n"
        "kind: workflow\nname: wf-listed\nstatus: active\n"
        "schedule: {cron: '0 3 * * *'}\nsteps:\n  - {name: only, event: wf-listed-step}\n"
    )
    assert cronium("apply", str(tmp_path / "wf.yaml")).returncode == 0

    def listed() -> dict:
        done = cronium("workflows", "--json")
        assert done.returncode == 0, done.stderr
        return {row["name"]: row for row in json.loads(done.stdout)}

    row = listed()["wf-listed"]
    assert (row["status"], row["steps"], row["schedule"]) == ("active", 1, "cron 0 3 * * * (UTC)")
    assert cronium("pause", "wf-listed").returncode == 0
    assert listed()["wf-listed"]["status"] == "paused"
    assert cronium("resume", "wf-listed").returncode == 0
    assert listed()["wf-listed"]["status"] == "active"
    assert cronium("delete", "wf-listed").returncode == 0
    assert "wf-listed" not in listed()
    text = cronium("workflows").stdout
    assert "WORKFLOW" in text and "wf-listed" not in text
