"""Workflows through the real worker, Docker and sshd: each step a linked run of its event.

The diamond: B and C (over SSH) succeed only if they run at the same time, D gets both
outputs as values."""

from __future__ import annotations

import json
import uuid

from .workflow_runs import (
    apply_with_probes,
    child_record,
    graph_node,
    parent_of,
    steps_of,
    trigger_wait,
    workflow_page,
)


def test_a_diamond_runs_b_and_c_at_once_and_d_gets_both_outputs(worker, ssh_server, tmp_path):
    apply_with_probes(
        tmp_path,
        ssh_server,
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
    code, record = trigger_wait("wf-diamond", {"start": 4, "dir": meeting})
    assert code == 0, json.dumps(record, indent=1)
    assert record["status"] == "SUCCESS" and record["workflow"] == "wf-diamond"
    steps = steps_of(record)
    assert [s["status"] for s in steps.values()] == ["SUCCESS"] * 4
    assert steps["a"]["output"]["value"] == 4
    assert steps["b"]["output"]["value"] == 5 and steps["c"]["output"]["value"] == 40
    assert steps["d"]["output"]["value"] == [5, 40]  # native values, not text
    assert record["output"] == {"d": steps["d"]["output"]}
    # Each step is a run of its event, started by the workflow as its subflow.
    child = child_record(steps["d"]["run_ids"][0])
    assert child["event"] == "wf-probe" and child["trigger"] == "workflow"
    assert parent_of(steps["d"]["run_ids"][0]) == record["run_id"]


def test_the_dashboard_draws_the_latest_run_and_lists_runs(
    worker, ssh_server, tmp_path, monkeypatch
):
    apply_with_probes(
        tmp_path,
        ssh_server,
        """\
        kind: workflow
        name: wf-drawn
        status: active
        on_failure: continue
        steps:
          - {name: first, event: wf-probe}
          - {name: broken, event: wf-probe, needs: [first], input: {fail: true}}
          - {name: never, event: wf-probe, needs: [broken]}
          - {name: tidy, event: wf-probe, needs: [{step: broken, on: always}]}
        """,
    )
    code, record = trigger_wait("wf-drawn")
    assert record["status"] == "PARTIAL", json.dumps(record, indent=1)
    import streamlit as st

    app = workflow_page("wf-drawn", tmp_path, monkeypatch)
    steps = steps_of(record)
    for step, colour in [("first", "#2e9e44"), ("broken", "#d62728"), ("tidy", "#2e9e44")]:
        line = graph_node(app, step)
        assert colour in line and f'URL="run?id={steps[step]["run_ids"][0]}"' in line, line
    assert "skipped" in graph_node(app, "never")
    (chart,) = app.get("graphviz_chart")
    assert '"broken" -> "tidy" [label="always"]' in chart.proto.spec
    table = app.dataframe[0].value
    assert list(table["status"]) == ["SUCCESS", "FAILURE", "SKIPPED", "SUCCESS"]
    runs = app.dataframe[1].value
    assert f"run?id={record['run_id']}" in list(runs["run"])
    st.cache_resource.clear()  # the page's Prefect clients belong to this test
