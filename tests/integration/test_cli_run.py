"""`cronium run` as a user runs it: a separate process against the test Prefect server."""

from __future__ import annotations

import asyncio
import json

from prefect.client.orchestration import get_client

from tests.cli import cronium

from .helpers import event_from


def test_run_file_json_prints_one_object_and_streams_logs_to_stderr(stack, tmp_path):
    (tmp_path / "job.yaml").write_text(
        "name: cli-job\ntype: python\nscript: |\n  import cronium\n  print('working on', cronium.input())\n"
        "  cronium.output({'rows': 3})\n  cronium.setCondition(True)\n"
    )
    done = cronium("run", "job.yaml", "--input", '{"day": "monday"}', "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert set(result) == {
        "event",
        "run_id",
        "status",
        "exit_code",
        "output",
        "condition",
        "duration_s",
        "error",
        "servers",
        "trigger",
        "webhook",
    }
    assert result["event"] == "cli-job" and result["status"] == "SUCCESS"
    assert result["trigger"] == "manual" and result["webhook"] is None
    assert result["output"] == {"rows": 3} and result["condition"] is True
    assert result["servers"] == [{"name": "local", "status": "SUCCESS", "exit_code": 0}]
    assert "[stdout] working on {'day': 'monday'}" in done.stderr


def test_run_exits_1_when_the_script_fails(stack, tmp_path):
    (tmp_path / "fail.yaml").write_text(
        "name: cli-fail\ntype: bash\nscript: echo oops >&2; exit 5\n"
    )
    done = cronium("run", "fail.yaml", cwd=tmp_path)
    assert done.returncode == 1
    assert "FAILURE" in done.stdout and "exit code 5" in done.stdout
    assert "Traceback" not in done.stderr


def test_run_by_name_uses_the_deployed_definition(stack, tmp_path):
    event = event_from("name: deployed-one\ntype: bash\nscript: cronium_output deployed\n")

    async def deploy():
        async with get_client() as client:
            flow_id = await client.create_flow_from_name("cronium-event")
            await client.create_deployment(
                flow_id=flow_id, name=event.name, parameters={"event": event.to_parameters()}
            )

    asyncio.run(deploy())
    done = cronium("run", "deployed-one", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["output"] == "deployed"


def test_run_unknown_name_exits_2_with_a_clear_message(stack, tmp_path):
    done = cronium("run", "never-defined", cwd=tmp_path)
    assert done.returncode == 2
    assert "no event named 'never-defined'" in done.stderr and "Traceback" not in done.stderr
