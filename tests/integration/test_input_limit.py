"""A run's input has a cap, checked before anything reaches Prefect's API: from the CLI
(`trigger`, `run`), and the output a run_event action passes on."""

from __future__ import annotations

import asyncio
import json
import os

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

from .test_apply import cronium, write_events

LIMIT = 4096
BIG = json.dumps({"blob": "x" * 5000})


def _env() -> dict[str, str]:
    return {**os.environ, "CRONIUM_INPUT_LIMIT": str(LIMIT)}


def _runs_of(name: str) -> int:
    async def count() -> int:
        async with get_client() as client:
            return len(
                await client.read_flow_runs(
                    deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[name]))
                )
            )

    return asyncio.run(count())


def test_trigger_and_run_refuse_an_input_over_the_limit(prefect_api, tmp_path):
    folder = write_events(
        tmp_path / "in", {"a.yaml": "name: cap-in\ntype: bash\nscript: cronium_input\n"}
    )
    assert cronium("apply", str(folder)).returncode == 0
    for command in (["trigger", "cap-in"], ["run", str(folder / "a.yaml")], ["run", "cap-in"]):
        done = cronium(*command, "--input", BIG, env=_env())
        assert done.returncode == 2, (command, done.stdout, done.stderr)
        assert f"over the input limit of {LIMIT} bytes (CRONIUM_INPUT_LIMIT)" in done.stderr
        assert "Traceback" not in done.stderr
    assert _runs_of("cap-in") == 0
    # Within the limit it runs.
    small = cronium("run", "cap-in", "--input", '{"n": 1}', "--json", env=_env())
    assert small.returncode == 0, small.stderr
    assert json.loads(small.stdout)["status"] == "SUCCESS"


def test_an_output_over_the_limit_fails_the_run_event_action_not_the_run(
    prefect_api, docker_client, tmp_path
):
    folder = write_events(
        tmp_path / "out",
        {
            "a.yaml": f"""\
name: cap-src
type: python
script: |
  import cronium
  cronium.output({{"blob": "y" * {LIMIT + 100}}})
actions:
  - on: success
    run_event: cap-dst
---
name: cap-dst
type: bash
script: cronium_input
"""
        },
    )
    assert cronium("apply", str(folder)).returncode == 0
    done = cronium("run", "cap-src", "--json", env=_env())
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "SUCCESS"
    assert "the output of cap-src is" in done.stderr
    assert f"over the input limit of {LIMIT} bytes" in done.stderr
    assert _runs_of("cap-dst") == 0
