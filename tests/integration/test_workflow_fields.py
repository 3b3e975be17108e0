"""A workflow's own fields through the real worker, Docker and sshd: its timeout stops an
SSH step on the server, its failure action runs, its record counts attempts and masks
secrets; max_parallel, overlap and priority; the worked example in examples/workflows
as a user runs it; a workflow built in Python. (The live dashboard page:
test_workflow_control.py, while a run waits to be cancelled.)"""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from pathlib import Path

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

from cronium_prefect.blocks.variable_store import get_variable_store
from cronium_prefect.names import WORKFLOW_FLOW_NAME

from .test_apply import cronium
from .workflow_runs import apply_with_probes, child_record, step_runs, steps_of, wait_for

EXAMPLE = Path(__file__).parents[2] / "examples" / "workflows"
SECRET = "wf-tok-5e1f0c-secret"
SLEEP = "sleep 1237"  # what the SSH step runs: found on this machine while it runs


def _read_run(run_id: str):
    async def read():
        async with get_client() as client:
            return await client.read_flow_run(run_id)

    return asyncio.run(read())


def _runs_of(event: str) -> list:
    async def read():
        async with get_client() as client:
            return await client.read_flow_runs(
                deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[event]))
            )

    return asyncio.run(read())


def _sleeping_on_the_server() -> bool:
    return subprocess.run(["pgrep", "-f", SLEEP], capture_output=True).returncode == 0


def test_timeout_stops_an_ssh_step_runs_failure_actions_and_masks_step_outputs(
    worker, ssh_server, tmp_path
):
    get_variable_store().set("WF_FIELDS_TOKEN", SECRET, secret=True)
    apply_with_probes(
        tmp_path,
        ssh_server,
        f"""\
        # Fails its first attempt, then returns a secret.
        name: wf-secretive
        type: python
        status: active
        retries: 1
        script: |
          import cronium
          if cronium.getVariable("WF_FIELDS_TRIED") is None:
              cronium.setVariable("WF_FIELDS_TRIED", "1")
              raise SystemExit("first attempt")
          cronium.output({{"token": cronium.getVariable("WF_FIELDS_TOKEN")}})
        ---
        name: wf-ssh-sleep
        type: bash
        status: active
        run_location: remote
        servers: [wf-ssh]
        script: {SLEEP}
        ---
        # Run by the workflow's failure action, with the workflow's output as its input.
        name: wf-fields-after
        type: bash
        status: active
        script: cronium_output "$(cronium_input)"
        ---
        kind: workflow
        name: wf-timed
        status: active
        timeout: 25s
        actions:
          - {{on: failure, run_event: wf-fields-after}}
          - {{on: success, run_event: wf-fields-after}}
        steps:
          - {{name: secret, event: wf-secretive}}
          - {{name: slow, event: wf-ssh-sleep}}
        """,
    )
    done = cronium("trigger", "wf-timed", "--json")
    assert done.returncode == 0, done.stderr
    run_id = json.loads(done.stdout)["run_id"]

    wait_for(_sleeping_on_the_server, "the SSH step's script to run", 60)
    run = wait_for(lambda: (r := _read_run(run_id)).state.is_final() and r, "the run", 120)
    record = child_record(run_id)
    assert record["status"] == "TIMEOUT", json.dumps(record, indent=1)
    assert record["error"] == "timed out after 25 s"
    assert run.state.is_failed(), run.state
    steps = steps_of(record)
    assert steps["secret"]["status"] == "SUCCESS"
    assert steps["secret"]["attempts"] == 2  # its event's retry counts
    assert steps["secret"]["output"] == {"token": "***"}
    assert 0 < steps["secret"]["duration_s"] < 25
    assert steps["slow"]["status"] == "CANCELLED", steps["slow"]
    assert 5 < steps["slow"]["duration_s"] < 60
    wait_for(lambda: not _sleeping_on_the_server(), "the SSH step's script to be stopped", 30)
    assert SECRET not in json.dumps(record)

    # The failure action ran, with the workflow's output; the success action did not.
    after = wait_for(
        lambda: [r for r in _runs_of("wf-fields-after") if r.state.is_final()] or None,
        "the failure action's run",
        120,
    )
    assert len(_runs_of("wf-fields-after")) == 1  # created before the run ended: not success's
    followed = child_record(str(after[0].id))
    assert followed["status"] == "SUCCESS", followed
    assert followed["output"]["secret"] == {"token": "***"}
    assert SECRET not in json.dumps(followed)


def test_max_parallel_overlap_and_priority_of_the_workflow_run(worker, ssh_server, tmp_path):
    meet = f"/tmp/wf-narrow-{uuid.uuid4().hex[:8]}"  # on the SSH server: this machine
    apply_with_probes(
        tmp_path,
        ssh_server,
        f"""\
        kind: workflow
        name: wf-narrow
        status: active
        max_parallel: 2
        overlap: skip
        priority: high
        steps:  # a and b succeed only if they run at once; c and d wait for a slot
          - {{name: a, event: wf-meet, input: {{dir: {meet}, me: a, other: b, value: 1}}}}
          - {{name: b, event: wf-meet, input: {{dir: {meet}, me: b, other: a, value: 2}}}}
          - {{name: c, event: wf-probe, input: {{sleep: 10}}}}
          - {{name: d, event: wf-probe, input: {{sleep: 10}}}}
        """,
    )
    first = cronium("trigger", "wf-narrow", "--json")
    assert first.returncode == 0, first.stderr
    first_id = json.loads(first.stdout)["run_id"]
    wait_for(lambda: _read_run(first_id).state.is_running(), "the first run to run", 120)
    # A second run while it runs (its steps c and d take 10 s: a CLI process under load
    # once took longer than the whole first run did with 1 s steps).
    second = cronium("trigger", "wf-narrow", "--json")
    assert second.returncode == 0, second.stderr
    second_id = json.loads(second.stdout)["run_id"]
    assert not _read_run(first_id).state.is_final(), "the first run ended before the second"
    ended = wait_for(
        lambda: (r := _read_run(first_id)).state.is_final() and r, "the first run", 180
    )
    assert ended.state.is_completed(), ended.state
    skipped = wait_for(
        lambda: (r := _read_run(second_id)).state.is_final() and r, "the second run", 60
    )
    assert skipped.state.is_cancelled(), skipped.state  # overlap: skip, while one runs
    runs = step_runs("wf-narrow")
    assert len(runs) == 4  # the first run's: the second started none
    spans = [(r.start_time, r.end_time) for r in runs]
    at_once = max(sum(1 for s in spans if s[0] <= t[0] < s[1]) for t in spans)
    assert at_once <= 2, spans  # never three (a and b met: two at once)

    async def read():
        async with get_client() as client:
            return await client.read_deployment_by_name(f"{WORKFLOW_FLOW_NAME}/wf-narrow")

    deployment = asyncio.run(read())
    assert deployment.work_queue_name == "high"
    assert ended.work_queue_name == "high"


def test_the_worked_example_runs_as_its_readme_says(worker, tmp_path):
    done = cronium("apply", str(EXAMPLE))
    assert done.returncode == 0, done.stderr
    regions = ["eu", "us", "ap", "sa", "af"]
    done = cronium(
        "trigger",
        "regional-report",
        "--input",
        json.dumps({"regions": regions}),
        "--wait",
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    text = done.stdout
    for line in [
        "step fetch: SUCCESS",
        "step transform: SUCCESS",
        "step report: SUCCESS",
        "step cleanup: SUCCESS",
        "Finished in state Completed('SUCCESS')",
        "SUCCESS workflow regional-report",
    ]:
        assert line in text, text
    for item in range(5):
        assert f"step transform item {item}: started report-transform" in text, text
    rows = {line.split()[0]: line.split() for line in text.splitlines() if line.startswith("  ")}
    assert [rows[s][1] for s in ("fetch", "transform", "report", "cleanup")] == ["SUCCESS"] * 4
    assert rows["transform"][4:6] == ["5", "runs"], rows["transform"]
    run_id = text.split("run id: ")[1].split()[0]
    record = child_record(run_id)
    report = steps_of(record)["report"]["output"]
    assert report["title"] == "Regional report (5 regions)" and report["regions"] == 5
    totals = [row["region"] for row in steps_of(record)["transform"]["output"]]
    assert totals == regions  # the items' outputs, in item order
    assert record["output"] == {"cleanup": f"cleaned scratch/regional-report/{run_id}"}


def test_a_workflow_built_in_python_runs(worker, ssh_server, tmp_path):
    from cronium_prefect import Step, Workflow
    from cronium_prefect.flows.workflow_flow import cronium_workflow

    apply_with_probes(tmp_path, ssh_server, "# only the probes")
    workflow = Workflow(
        name="wf-in-python",
        steps=[
            Step(name="first", event="wf-probe", input={"value": 20}),
            Step(
                name="then",
                event="wf-probe",
                needs=["first"],
                input={"value": "{{ steps.first.output.value + 1 }}"},
            ),
        ],
    )
    state = asyncio.run(cronium_workflow(workflow=workflow, return_state=True))
    assert state.is_completed(), state
    record = state.result()
    assert [s["status"] for s in record["steps"]] == ["SUCCESS", "SUCCESS"], record
    assert record["steps"][1]["output"]["value"] == 21, record
