"""Workflow branches through the real worker and Docker: a failure branch, `join: any` and
an always-cleanup step under fail_fast and under continue; for_each with max_parallel."""

from __future__ import annotations

import asyncio
import json
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

from .workflow_runs import apply_with_probes, steps_of, trigger_wait


def _runs(ids: list[str]) -> list:
    async def read():
        async with get_client() as client:
            return await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[UUID(i) for i in ids]))
            )

    return asyncio.run(read())


# `a` fails. `on-fail` handles it, `on-ok` needs it to succeed, `either` joins `a` or
# `on-fail`, `cleanup` (an event defined inline) runs however the others ended.
BRANCHES = """\
kind: workflow
name: {name}
status: active
on_failure: {policy}
steps:
  - name: a
    event: wf-probe
    input: {{fail: true}}
  - name: on-fail
    event: wf-probe
    needs: [{{step: a, on: failure}}]
    input: {{value: "a was {{{{ steps.a.status }}}}"}}
  - name: on-ok
    event: wf-probe
    needs: [a]
  - name: either
    event: wf-probe
    needs: [a, on-fail]
    join: any
    input: {{value: "{{{{ steps['on-fail'].output.value }}}}"}}
  - name: cleanup
    run:  # an event of its own, defined here: {name}--cleanup
      type: bash
      script: cronium_output "$(cronium_input)"
    needs: [{{step: either, on: always}}, {{step: on-ok, on: always}}]
    input: {{value: cleaned}}
"""


def test_failure_branch_join_any_and_cleanup_under_fail_fast_and_continue(
    worker, ssh_server, tmp_path
):
    apply_with_probes(
        tmp_path,
        ssh_server,
        BRANCHES.format(name="wf-ff", policy="fail_fast")
        + "---\n"
        + BRANCHES.format(name="wf-go", policy="continue"),
    )
    code, record = trigger_wait("wf-ff")
    assert code == 1 and record["status"] == "FAILURE", json.dumps(record, indent=1)
    steps = steps_of(record)
    assert {n: s["status"] for n, s in steps.items()} == {
        "a": "FAILURE",
        "on-fail": "SUCCESS",  # a failure branch still runs under fail_fast
        "on-ok": "NOT_STARTED",
        "either": "NOT_STARTED",  # it needs no failure: fail_fast starts it no more
        "cleanup": "SUCCESS",  # always
    }
    assert steps["on-fail"]["output"]["value"] == "a was FAILURE"
    assert "a FAILURE" in record["error"]

    code, record = trigger_wait("wf-go")
    assert code == 1 and record["status"] == "PARTIAL", json.dumps(record, indent=1)
    steps = steps_of(record)
    assert {n: s["status"] for n, s in steps.items()} == {
        "a": "FAILURE",
        "on-fail": "SUCCESS",
        "on-ok": "SKIPPED",  # a failed: its success need can never hold
        "either": "SUCCESS",  # join: any: on-fail's success is enough
        "cleanup": "SUCCESS",
    }
    assert steps["either"]["output"]["value"] == "a was FAILURE"
    assert steps["cleanup"]["output"] == {"value": "cleaned"}
    assert steps["cleanup"]["event"] == "wf-go--cleanup"
    assert not steps["on-ok"]["run_ids"]


def test_for_each_runs_20_items_at_most_4_at_once_and_collects_outputs_in_order(
    worker, ssh_server, tmp_path
):
    apply_with_probes(
        tmp_path,
        ssh_server,
        """\
        kind: workflow
        name: wf-each
        status: active
        steps:
          - name: list
            event: wf-probe
            input: {value: "{{ range(input.n) | list }}"}
          - name: each
            event: wf-probe
            needs: [list]
            for_each: "{{ steps.list.output.value }}"
            max_parallel: 4
            input: {sleep: 1, value: "{{ item * 2 }}", index: "{{ index }}"}
          - name: total
            event: wf-probe
            needs: [each]
            input: {value: "{{ steps.each.output | map(attribute='value') | sum }}"}
        """,
    )
    code, record = trigger_wait("wf-each", {"n": 20})
    assert code == 0, json.dumps(record, indent=1)
    each = steps_of(record)["each"]
    assert each["items"] == 20 and len(each["run_ids"]) == 20
    assert [o["value"] for o in each["output"]] == [i * 2 for i in range(20)]
    assert [o["got"]["index"] for o in each["output"]] == list(range(20))
    assert steps_of(record)["total"]["output"]["value"] == sum(i * 2 for i in range(20))
    # Never more than 4 at once: at no item's start were 4 others running.
    spans = [o["ran"] for o in each["output"]]
    at_once = max(sum(1 for s in spans if s[0] <= t < s[1]) for t, _ in spans)
    assert at_once <= 4, f"{at_once} items ran at once"
    # And 4 at a time were started: the first 4 runs were all created before any item
    # ended (on the server's clock, whatever the machine's load).
    created = sorted(r.created.timestamp() for r in _runs(each["run_ids"]))
    first_end = min(r.end_time.timestamp() for r in _runs(each["run_ids"]))
    assert created[3] < first_end, "the items did not start 4 at a time"
