"""Event runs in real Docker containers through the real flow and Prefect server."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    DeploymentFilter,
    DeploymentFilterName,
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import StateType

from cronium_prefect.blocks.variable_store import get_variable_store

from .helpers import event_from, logs_of, run_flow, script_lines

SCENARIO = {
    "python": """
import cronium
data = cronium.input()
meta = cronium.event()
cronium.setVariable("SEEN_PYTHON", {"n": data["n"] + 1})
cronium.output({"greeting": cronium.getVariable("GREETING"), "input": data,
                "nested": {"list": [1, {"deep": True}]}, "again": cronium.get_variable("SEEN_PYTHON"),
                "meta": {k: meta[k] for k in ("name", "type", "run_id", "attempt", "trigger", "server")}})
cronium.set_condition(True)
print("python done")
""",
    "node": """
const cronium = require("cronium");
(async () => {
  const data = await cronium.input();
  const meta = await cronium.event();
  await cronium.setVariable("SEEN_NODE", {n: data.n + 1});
  await cronium.output({greeting: await cronium.getVariable("GREETING"), input: data,
    nested: {list: [1, {deep: true}]}, again: await cronium.get_variable("SEEN_NODE"),
    meta: {name: meta.name, type: meta.type, run_id: meta.run_id, attempt: meta.attempt,
           trigger: meta.trigger, server: meta.server}});
  await cronium.setCondition(true);
  console.log("node done");
})();
""",
    "bash": """
data=$(cronium_input)
n=$(printf '%s' "$data" | sed 's/[^0-9]//g')
cronium_setVariable SEEN_BASH "{\\"n\\": $((n + 1))}"
meta=$(cronium_event)
cronium_output "{\\"greeting\\": \\"$(cronium_getVariable GREETING)\\", \\"input\\": $data, \
\\"nested\\": {\\"list\\": [1, {\\"deep\\": true}]}, \\"again\\": $(cronium_getVariable SEEN_BASH), \
\\"meta\\": $meta}"
cronium_setCondition true
source cronium.sh && echo "bash done"
""",
}


@pytest.mark.parametrize("language", ["python", "node", "bash"])
def test_helper_scenario_in_every_language(stack, language):
    store = get_variable_store()
    store.set("GREETING", "hello from the store")
    event = event_from(
        f"name: scenario-{language}\ntype: {language}\nscript: {json.dumps(SCENARIO[language])}\n"
    )
    state, record = run_flow(event, input={"n": 41})

    assert state.type == StateType.COMPLETED, record["error"]
    output = record["output"]
    assert output["greeting"] == "hello from the store"
    assert output["input"] == {"n": 41}
    assert output["nested"] == {"list": [1, {"deep": True}]}
    assert output["again"] == {"n": 42}  # a write is visible to the same run
    meta = output["meta"]
    assert meta["name"] == f"scenario-{language}" and meta["type"] == language
    assert meta["run_id"] == record["run_id"] == str(state.state_details.flow_run_id)
    assert meta["attempt"] == 1 and meta["trigger"] == "api" and meta["server"] == "local"
    assert record["condition"] is True and record["status"] == "SUCCESS"
    assert store.visible(None).values[f"SEEN_{language.upper()}"] == {"n": 42}
    assert f"[stdout] {language} done" in script_lines(record["run_id"])

    async def artifacts():
        async with get_client() as client:
            return await client.read_artifacts(
                artifact_filter=ArtifactFilter(
                    flow_run_id=ArtifactFilterFlowRunId(any_=[UUID(record["run_id"])])
                )
            )

    found = asyncio.run(artifacts())
    assert "markdown" not in [a.type for a in found]  # the summary is the record's description
    (only,) = [a for a in found if a.type == "cronium-record"]
    assert only.key is None
    data = json.loads(only.data)
    assert data["status"] == "SUCCESS" and data["output"] == record["output"]
    assert only.description.startswith(f"# scenario-{language}: SUCCESS")
    assert '"deep": true' in only.description


def _running_flow_run_id(timeout: float = 60, event: str | None = None) -> str:
    """The id of a running flow run (of `event`'s deployment, when given: another test's
    run may still be running on the same server)."""

    async def find():
        async with get_client() as client:
            runs = await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.RUNNING]))
                ),
                deployment_filter=(
                    DeploymentFilter(name=DeploymentFilterName(any_=[event])) if event else None
                ),
            )
            return [str(r.id) for r in runs]

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ids = asyncio.run(find())
        if ids:
            return ids[0]
        time.sleep(0.1)
    raise AssertionError("no running flow run appeared")


def test_lines_reach_the_api_while_the_script_is_still_running(stack):
    event = event_from("name: live\ntype: bash\nscript: |\n  echo first\n  sleep 8\n  echo last\n")
    done = threading.Event()
    results = {}

    def run():
        results["state"], results["record"] = run_flow(event)
        done.set()

    threading.Thread(target=run, daemon=True).start()
    run_id = _running_flow_run_id()
    deadline = time.monotonic() + 6
    while "[stdout] first" not in logs_of(run_id, finished=False):
        assert time.monotonic() < deadline, "first line not in the API within 6 s"
        time.sleep(0.2)
    assert not done.is_set(), "the first line must be visible before the run ends"
    assert "[stdout] last" not in logs_of(run_id, finished=False)
    assert done.wait(60)
    assert script_lines(run_id) == ["[stdout] first", "[stdout] last"]


def test_line_order_is_kept_within_and_across_streams(stack):
    script = (
        "import sys, time\n"
        "for i in range(300):\n"
        "    print(f'out {i}', flush=True)\n"
        "    if i % 30 == 0:\n"
        "        time.sleep(0.05)\n"
        "        print(f'err {i}', file=sys.stderr, flush=True)\n"
        "        time.sleep(0.05)\n"
    )
    state, record = run_flow(
        event_from(f"name: order\ntype: python\nscript: {json.dumps(script)}\n")
    )
    assert record["status"] == "SUCCESS"
    lines = script_lines(record["run_id"])
    expected = []
    for i in range(300):
        expected.append(f"[stdout] out {i}")
        if i % 30 == 0:
            expected.append(f"[stderr] err {i}")
    assert lines == expected
    assert record["log_lines"] == len(expected)


def test_timeout_kills_the_container_and_ends_timed_out(stack, docker_client):
    event = event_from(
        "name: slow\ntype: bash\ntimeout: 2s\nscript: |\n  trap '' TERM\n  echo started\n  sleep 60\n"
    )
    started = time.monotonic()
    state, record = run_flow(event)
    assert time.monotonic() - started < 20
    assert state.type == StateType.FAILED and state.name == "TimedOut"
    assert record["status"] == "TIMEOUT" and "timed out after 2s" in record["error"]
    left = docker_client.containers.list(
        all=True, sparse=True, filters={"label": f"io.cronium.run-id={record['run_id']}"}
    )
    assert left == []


def test_non_zero_exit_is_failure_with_the_exit_code(stack):
    state, record = run_flow(event_from("name: exits\ntype: bash\nscript: echo bye; exit 3\n"))
    assert state.type == StateType.FAILED and state.name == "Failed"
    assert record["status"] == "FAILURE" and record["exit_code"] == 3
    assert record["error"] == "exit code 3"
    assert record["servers"] == [
        {
            "name": "local",
            "status": "FAILURE",
            "exit_code": 3,
            "error": "exit code 3",
            "output": None,
            "condition": False,
        }
    ]


def test_out_of_memory_is_reported_as_such(stack):
    event = event_from(
        "name: hog\ntype: python\nresources: {memory: 64m}\n"
        "script: |\n  chunks = []\n  while True:\n    chunks.append(bytearray(16 * 1024 * 1024))\n"
    )
    state, record = run_flow(event)
    assert record["status"] == "FAILURE"
    assert "out of memory" in record["error"]


def test_retries_rerun_the_script_with_backoff(stack):
    script = (
        "import cronium, sys\nattempt = cronium.event()['attempt']\nprint('attempt', attempt)\n"
        "cronium.output(attempt)\nsys.exit(0 if attempt == 3 else 1)\n"
    )
    state, record = run_flow(
        event_from(f"name: flaky\ntype: python\nretries: 2\nscript: {json.dumps(script)}\n")
    )
    assert record["status"] == "SUCCESS" and record["attempts"] == 3 and record["output"] == 3
    lines = script_lines(record["run_id"])
    assert lines == ["[stdout] attempt 1", "[stdout] attempt 2", "[stdout] attempt 3"]


def test_a_retry_sees_the_variables_its_earlier_attempt_saved(stack):
    """A retry reads what a failed attempt saved (a cursor, a checkpoint), not the values
    read when the run began; the second attempt here failed again before the fix."""
    script = (
        "import cronium\nmark = cronium.getVariable('RETRY_MARK')\n"
        "cronium.setVariable('RETRY_MARK', cronium.event()['attempt'])\n"
        "if mark is None:\n    raise SystemExit('no mark yet')\ncronium.output(mark)\n"
    )
    state, record = run_flow(
        event_from(f"name: resumes\ntype: python\nretries: 2\nscript: {json.dumps(script)}\n")
    )
    assert (record["status"], record["attempts"], record["output"]) == ("SUCCESS", 2, 1), record
    assert get_variable_store().visible(None, ["RETRY_MARK"]).values == {"RETRY_MARK": 2}


def test_retries_exhausted_end_in_failure(stack):
    state, record = run_flow(event_from("name: broken\ntype: bash\nretries: 1\nscript: exit 7\n"))
    assert record["status"] == "FAILURE" and record["attempts"] == 2 and record["exit_code"] == 7


def test_secret_variables_are_masked_in_logs(stack):
    get_variable_store().set("API_TOKEN", "tok-3c1a9f-secret", secret=True)
    state, record = run_flow(
        event_from(
            "name: leaky\ntype: bash\nscript: 'echo \"token is $(cronium_getVariable API_TOKEN)\"'\n"
        )
    )
    assert record["status"] == "SUCCESS"
    logs = "\n".join(logs_of(record["run_id"]))
    assert "[stdout] token is ***" in logs and "tok-3c1a9f-secret" not in logs


def test_a_failed_runs_result_raises_run_failed_with_the_record(stack):
    from cronium_prefect.errors import RunFailed
    from cronium_prefect.flows import cronium_event

    event = event_from("name: raises\ntype: bash\nscript: exit 9\n")
    with pytest.raises(RunFailed, match="raises FAILURE: exit code 9") as caught:
        asyncio.run(cronium_event(event=event))
    assert caught.value.record.exit_code == 9


def test_a_first_start_neither_reaps_leftovers_nor_reads_its_history(stack, monkeypatch):
    """Only a run started again (Running twice: run_count 2) reads its state history to
    count crashes (and may reap a dead worker's container). A first start is Running once
    (run_count 1, not 0): it read its history too, an API call per run for nothing."""
    from prefect.client.orchestration import PrefectClient

    from cronium_prefect.flows.runtime import Runtime

    reads: list[object] = []
    history = PrefectClient.read_flow_run_states

    async def counted(self, flow_run_id):
        reads.append(flow_run_id)
        return await history(self, flow_run_id)

    monkeypatch.setattr(PrefectClient, "read_flow_run_states", counted)
    reaped: list[object] = []
    monkeypatch.setattr(Runtime, "reap_leftovers", lambda self: reaped.append(self))
    _, record = run_flow(event_from("name: first-start\ntype: bash\nscript: echo hi\n"))
    assert record["status"] == "SUCCESS"
    assert reads == [], "a first start read its state history"
    assert reaped == [], "a first start reaped leftovers"
