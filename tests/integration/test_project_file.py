"""prefect.yaml: `prefect deploy --all` creates the deployments `cronium apply` would."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

from prefect.client.orchestration import get_client

from cronium_prefect.flows.deploy import deployment_spec, ensure_pool, read_event_deployments
from cronium_prefect.loader import load_paths
from tests.cli import cronium

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "events"


def test_committed_prefect_yaml_is_the_export_of_the_examples():
    exported = cronium("export", "examples/events", cwd=ROOT)
    assert exported.returncode == 0, exported.stderr
    assert exported.stdout == (ROOT / "prefect.yaml").read_text(), (
        "prefect.yaml is stale: run `cronium export examples/events -o prefect.yaml`"
    )


def test_prefect_deploy_all_matches_cronium_apply(prefect_api, tmp_path):
    async def prepare() -> None:
        async with get_client() as client:
            await ensure_pool(client)
            existing = await read_event_deployments(client)
            for event in load_paths([EXAMPLES]):
                if event.name in existing:
                    await client.delete_deployment(existing[event.name].id)

    asyncio.run(prepare())
    deployed = subprocess.run(
        [
            str(Path(sys.executable).parent / "prefect"),
            "--no-prompt",
            "deploy",
            "--all",
            "--prefect-file",
            str(ROOT / "prefect.yaml"),
        ],
        cwd=tmp_path,  # nothing to pull or build: the flow is a module path
        env=os.environ,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr

    async def read() -> dict:
        async with get_client() as client:
            return await read_event_deployments(client)

    found = asyncio.run(read())
    events = load_paths([EXAMPLES])
    assert events
    for event in events:
        spec, got = deployment_spec(event), found[event.name]
        assert got.entrypoint == spec["entrypoint"]
        assert got.parameters == json.loads(json.dumps(spec["parameters"]))
        assert got.version == spec["version"] and got.paused == spec["paused"]
        assert sorted(got.tags) == spec["tags"]
        assert (got.work_pool_name, got.work_queue_name) == ("cronium", spec["work_queue_name"])
        assert [s.schedule.model_dump() for s in got.schedules] == [
            s.schedule.model_dump() for s in spec["schedules"]
        ]
        assert [s.active for s in got.schedules] == [s.active for s in spec["schedules"]]
        assert (got.global_concurrency_limit.limit if got.global_concurrency_limit else None) == (
            spec.get("concurrency_limit")
        )
        if "concurrency_options" in spec:
            assert got.concurrency_options == spec["concurrency_options"]
    # Same versions: `cronium apply` sees nothing to change.
    again = cronium("apply", str(EXAMPLES), "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["unchanged"] == len(events)


def test_export_refuses_placeholders_that_prefect_deploy_would_rewrite(tmp_path):
    (tmp_path / "t.yaml").write_text(
        "name: pf-tpl\ntype: bash\nscript: echo hi\nactions:\n"
        "  - on: failure\n"
        "    send_message: {block: b, subject: '{{ (event.name) }} ok', message: '{{ run.error }}'}\n"
    )
    refused = cronium("export", str(tmp_path / "t.yaml"), "-o", str(tmp_path / "prefect.yaml"))
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "actions[0].send_message.message" in refused.stderr
    assert "{{ run.error }} would be replaced by `prefect deploy`" in refused.stderr
    assert "event.name" not in refused.stderr  # the parenthesised form is left alone
    assert not (tmp_path / "prefect.yaml").exists()
    unwritable = cronium("export", str(EXAMPLES), "-o", str(tmp_path / "no" / "such" / "p.yaml"))
    assert unwritable.returncode == 2 and "cannot write" in unwritable.stderr
