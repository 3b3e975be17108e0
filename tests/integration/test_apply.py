"""`cronium apply` and friends against a real Prefect server."""

from __future__ import annotations

import asyncio
import json
import textwrap

import httpx
from prefect.client.orchestration import get_client

from cronium_prefect.flows.deploy import read_event_deployments
from tests.cli import cronium

EVENTS = {
    "nightly.yaml": """\
        name: ap-nightly
        type: bash
        script: echo nightly
        status: active
        schedule: {cron: "0 3 * * *", timezone: Europe/Berlin}
        priority: high
        tags: [reports]
    """,
    "poll.yaml": """\
        name: ap-poll
        type: python
        script: print(1)
        status: paused
        schedule: {interval: 15m}
        overlap: queue
    """,
    "drafts.yaml": """\
        name: ap-draft
        type: node
        script: console.log(1)
        ---
        name: ap-archived
        type: bash
        script: "true"
        status: archived
        priority: low
        overlap: allow
    """,
}


def deployed() -> dict:
    async def read():
        async with get_client() as client:
            found = await read_event_deployments(client)
            return {name: d for name, d in found.items() if name.startswith("ap-")}

    return asyncio.run(read())


def write_events(folder, events=EVENTS):
    folder.mkdir(exist_ok=True)
    for name, text in events.items():
        (folder / name).write_text(textwrap.dedent(text))
    return folder


def test_apply_creates_deployments_with_schedules_status_queue_and_overlap(prefect_api, tmp_path):
    folder = write_events(tmp_path / "events")
    done = cronium("apply", str(folder), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["created"] == 4
    found = deployed()
    nightly = found["ap-nightly"]
    assert not nightly.paused and nightly.work_queue_name == "high"
    assert nightly.work_pool_name == "cronium"
    assert nightly.entrypoint == "cronium_prefect.flows.event_flow.cronium_event"
    assert nightly.schedules[0].schedule.cron == "0 3 * * *"
    assert nightly.schedules[0].schedule.timezone == "Europe/Berlin"
    assert set(nightly.tags) >= {"reports", "cronium", "cronium-lifecycle:live"}
    assert nightly.parameters["event"]["script"] == "echo nightly"
    assert nightly.global_concurrency_limit.limit == 1
    assert nightly.concurrency_options.collision_strategy.value == "CANCEL_NEW"
    poll = found["ap-poll"]
    assert poll.paused and poll.schedules[0].schedule.interval.total_seconds() == 900
    assert poll.concurrency_options.collision_strategy.value == "ENQUEUE"
    assert found["ap-draft"].paused and "cronium-lifecycle:draft" in found["ap-draft"].tags
    archived = found["ap-archived"]
    assert archived.paused and archived.work_queue_name == "low"
    assert archived.global_concurrency_limit is None

    listing = {
        row["name"]: row for row in json.loads(cronium("events", "--name", "ap-", "--json").stdout)
    }
    assert "ap-archived" not in listing
    assert listing["ap-nightly"]["status"] == "active"
    assert listing["ap-nightly"]["schedule"] == "cron 0 3 * * * (Europe/Berlin)"
    archived_only = json.loads(
        cronium("events", "--status", "archived", "--name", "ap-", "--json").stdout
    )
    assert [row["name"] for row in archived_only if row["name"].startswith("ap-")] == [
        "ap-archived"
    ]

    # Re-applying the same tree writes nothing.
    before = {name: d.updated for name, d in deployed().items()}
    again = json.loads(cronium("apply", str(folder), "--json").stdout)
    assert again["unchanged"] == 4 and again["created"] == again["updated"] == 0
    assert {name: d.updated for name, d in deployed().items()} == before

    # One changed event: only it is written.
    (folder / "poll.yaml").write_text(textwrap.dedent(EVENTS["poll.yaml"]).replace("15m", "20m"))
    changed = json.loads(cronium("apply", str(folder), "--json").stdout)
    assert changed["updated"] == 1 and changed["unchanged"] == 3
    after = deployed()
    assert after["ap-poll"].schedules[0].schedule.interval.total_seconds() == 1200
    assert after["ap-nightly"].updated == before["ap-nightly"]

    # An invalid file: exit 2, nothing written.
    (folder / "broken.yaml").write_text("name: ap-broken\ntype: bash\nshedule: x\n")
    (folder / "poll.yaml").write_text(textwrap.dedent(EVENTS["poll.yaml"]).replace("15m", "30m"))
    refused = cronium("apply", str(folder))
    assert refused.returncode == 2 and "did you mean 'schedule'" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert deployed()["ap-poll"].schedules[0].schedule.interval.total_seconds() == 1200

    # --prune removes the deleted one.
    (folder / "broken.yaml").unlink()
    (folder / "drafts.yaml").unlink()
    pruned = json.loads(cronium("apply", str(folder), "--prune", "--json").stdout)
    assert pruned["pruned"] >= 2
    assert set(deployed()) == {"ap-nightly", "ap-poll"}


def test_pause_resume_delete(prefect_api, tmp_path):
    folder = write_events(
        tmp_path / "ev", {"nightly.yaml": EVENTS["nightly.yaml"].replace("ap-nightly", "ap-toggle")}
    )
    assert cronium("apply", str(folder)).returncode == 0
    assert cronium("pause", "ap-toggle").returncode == 0
    paused = deployed()["ap-toggle"]
    assert paused.paused and "cronium-lifecycle:live" in paused.tags
    assert "status" not in paused.parameters["event"]  # the paused flag is the one truth
    assert _listed_status("ap-toggle") == "paused"
    assert cronium("resume", "ap-toggle").returncode == 0
    assert not deployed()["ap-toggle"].paused
    assert _listed_status("ap-toggle") == "active"
    assert cronium("delete", "ap-toggle").returncode == 0
    assert "ap-toggle" not in deployed()
    missing = cronium("pause", "ap-toggle")
    assert missing.returncode == 2 and "no event or workflow named 'ap-toggle'" in missing.stderr


def _listed_status(name: str) -> str:
    listed = cronium("events", "--name", name, "--json")
    assert listed.returncode == 0, listed.stderr
    return {row["name"]: row["status"] for row in json.loads(listed.stdout)}[name]


def _set_paused_as_prefect_ui_does(api: str, name: str, paused: bool) -> None:
    deployment_id = deployed()[name].id
    response = httpx.patch(f"{api}/deployments/{deployment_id}", json={"paused": paused})
    assert response.status_code == 204, response.text


def test_a_pause_or_resume_in_prefects_ui_is_what_every_reader_sees(prefect_api, tmp_path):
    """Prefect's paused flag is the one truth: a pause made in Prefect's UI shows in
    `cronium events` and the dashboard, `cronium resume` undoes it, and `apply` undoes
    it only saying so."""
    from cronium_prefect.dashboard.data_events import event_detail, events_page

    text = EVENTS["poll.yaml"].replace("ap-poll", "ap-ui").replace("paused", "active")
    folder = write_events(tmp_path / "ui", {"ui.yaml": text})
    assert cronium("apply", str(folder)).returncode == 0

    _set_paused_as_prefect_ui_does(prefect_api, "ap-ui", True)
    assert _listed_status("ap-ui") == "paused"
    assert [r["status"] for r in events_page(search="ap-ui")["rows"]] == ["paused"]
    assert "ap-ui" in [r["name"] for r in events_page(status="paused", search="ap-ui")["rows"]]
    assert events_page(status="active", search="ap-ui")["rows"] == []
    assert event_detail("ap-ui")["status"] == "paused"
    resumed = cronium("resume", "ap-ui")
    assert resumed.returncode == 0, resumed.stderr
    assert not deployed()["ap-ui"].paused and _listed_status("ap-ui") == "active"

    _set_paused_as_prefect_ui_does(prefect_api, "ap-ui", True)
    again = cronium("apply", str(folder))
    assert again.returncode == 0, again.stderr
    assert "ap-ui: paused -> active" in again.stdout
    assert not deployed()["ap-ui"].paused
    quiet = cronium("apply", str(folder), "--json")
    assert json.loads(quiet.stdout)["status_changes"] == []

    # Resumed in Prefect's UI: active everywhere, and its schedule makes runs again.
    assert cronium("pause", "ap-ui").returncode == 0
    _set_paused_as_prefect_ui_does(prefect_api, "ap-ui", False)
    assert _listed_status("ap-ui") == "active"
    assert all(s.active for s in deployed()["ap-ui"].schedules)


def test_apply_refuses_unknown_servers_and_run_event_targets(prefect_api, tmp_path):
    folder = write_events(
        tmp_path / "bad",
        {
            "r.yaml": """\
        name: ap-remote
        type: bash
        script: uptime
        run_location: remote
        servers: [no-such-server]
        actions: [{on: success, run_event: ap-nowhere}]
    """
        },
    )
    done = cronium("apply", str(folder))
    assert done.returncode == 2
    assert "server 'no-such-server' does not exist" in done.stderr
    assert "run_event 'ap-nowhere' names no event" in done.stderr
    assert "ap-remote" not in deployed()


def test_run_event_may_target_an_event_deployed_from_another_file(prefect_api, tmp_path):
    first = write_events(
        tmp_path / "one", {"t.yaml": "name: ap-target\ntype: bash\nscript: 'true'\n"}
    )
    second = write_events(
        tmp_path / "two",
        {
            "s.yaml": """\
        name: ap-source
        type: bash
        script: "true"
        actions: [{on: success, run_event: ap-target}]
    """
        },
    )
    assert cronium("apply", str(first)).returncode == 0
    done = cronium("apply", str(second))
    assert done.returncode == 0, done.stderr
    assert {"ap-target", "ap-source"} <= set(deployed())


def test_apply_schedules_runs_at_once_and_warns_about_a_past_one_shot(prefect_api, tmp_path):
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

    folder = write_events(
        tmp_path / "s",
        {
            "s.yaml": """\
            name: ap-hourly
            type: bash
            script: echo hourly
            status: active
            schedule: {cron: "0 * * * *"}
            ---
            name: ap-missed
            type: bash
            script: echo missed
            status: active
            schedule: {start_time: "2020-01-01T00:00:00Z"}
            """
        },
    )
    done = cronium("apply", str(folder))
    assert done.returncode == 0, done.stderr
    assert "ap-missed: schedule.start_time 2020-01-01T00:00:00+00:00 is in the past" in done.stderr
    assert "ap-hourly" not in done.stderr

    async def scheduled(name: str) -> int:
        async with get_client() as client:
            runs = await client.read_flow_runs(
                deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[name]))
            )
        return len(runs)

    # Read straight after apply returns: the runs come from apply's own call to the
    # server's schedule endpoint, not from the scheduler service's next pass.
    assert asyncio.run(scheduled("ap-hourly")) >= 3
    assert asyncio.run(scheduled("ap-missed")) == 0
    assert cronium("delete", "ap-hourly").returncode == 0
    assert cronium("delete", "ap-missed").returncode == 0


def test_bulk_reader_pages_and_listing_table_read_the_same_deployments(
    prefect_api, tmp_path, monkeypatch
):
    from cronium_prefect.flows import deploy

    folder = write_events(tmp_path / "bulk")
    assert cronium("apply", str(folder)).returncode == 0

    # Pages of 2: several, the last one short or empty.
    monkeypatch.setattr(deploy, "_PAGE", 2)

    async def light() -> dict:
        async with get_client() as client:
            return await deploy.read_deployed_events(client)

    found = asyncio.run(light())
    full = deployed()
    assert set(full) <= set(found)
    for name, d in full.items():
        got = found[name]
        assert (got.id, got.version) == (str(d.id), d.version)
        assert got.tags == d.tags and got.parameters == d.parameters
    assert full["ap-nightly"].parameter_openapi_schema == deploy.PARAMETER_SCHEMA

    lines = cronium("events", "--name", "ap-").stdout.splitlines()
    assert lines[0].split() == ["EVENT", "TYPE", "STATUS", "SCHEDULE", "NEXT", "RUN", "LAST", "RUN"]
    nightly = next(line for line in lines if line.startswith("ap-nightly "))
    assert nightly.split()[:5] == ["ap-nightly", "bash", "active", "cron", "0"]
    assert "(Europe/Berlin)" in nightly and not any(
        line.startswith("ap-archived") for line in lines
    )


def test_events_shows_each_events_runs_when_busier_events_fill_a_batch(
    prefect_api, tmp_path, monkeypatch
):
    """`cronium events` read the first 200 runs and showed nothing for an event none of
    them belonged to: one event firing every minute hid every other event's last run."""
    from datetime import datetime, timedelta, timezone

    from prefect.states import Completed, Scheduled

    from cronium_prefect.flows import listing

    events = {
        "q.yaml": "name: lr-quiet\ntype: bash\nscript: 'true'\n",
        "b.yaml": "name: lr-busy\ntype: bash\nscript: 'true'\n",
    }
    assert cronium("apply", str(write_events(tmp_path / "lr", events))).returncode == 0
    soon = datetime.now(timezone.utc) + timedelta(hours=1)

    async def seed() -> None:
        async with get_client() as client:
            found = await read_event_deployments(client)
            quiet, busy = found["lr-quiet"].id, found["lr-busy"].id
            # Finished: the quiet event's run first, then three of the busy one's.
            for deployment_id in (quiet, busy, busy, busy):
                await client.create_flow_run_from_deployment(deployment_id, state=Completed())
            # Scheduled: three runs of the busy event before the quiet one's.
            for deployment_id, minutes in ((busy, 1), (busy, 2), (busy, 3), (quiet, 10)):
                when = soon + timedelta(minutes=minutes)
                await client.create_flow_run_from_deployment(
                    deployment_id, state=Scheduled(scheduled_time=when)
                )

    asyncio.run(seed())
    monkeypatch.setattr(listing, "_RUNS", 2)  # a batch the busy event fills
    rows = {r["name"]: r for r in asyncio.run(listing.list_events()) if r["name"][:3] == "lr-"}
    for name in ("lr-quiet", "lr-busy"):
        assert rows[name]["last_status"] == "Completed" and rows[name]["last_run"], rows[name]
    assert rows["lr-quiet"]["last_run"] < rows["lr-busy"]["last_run"]
    next_runs = {name: datetime.fromisoformat(rows[name]["next_run"]) for name in rows}
    assert next_runs["lr-busy"] == soon + timedelta(minutes=1)
    assert next_runs["lr-quiet"] == soon + timedelta(minutes=10)


def test_events_deployed_by_an_earlier_version_read_right_and_are_migrated(prefect_api, tmp_path):
    """Before the paused flag was the one truth: a `cronium-status:` tag, the status in
    the parameters, and inactive schedules on paused events. Read right at once; the next
    apply (or worker start) migrates them."""
    from datetime import timedelta

    from prefect.client.schemas.actions import DeploymentScheduleCreate
    from prefect.client.schemas.schedules import IntervalSchedule

    from cronium_prefect.names import FLOW_NAME

    async def deploy_the_old_way():
        async with get_client() as client:
            flow_id = await client.create_flow_from_name(FLOW_NAME)
            for name, status in (("ap-old-draft", "draft"), ("ap-old-paused", "paused")):
                await client.create_deployment(
                    flow_id=flow_id,
                    name=name,
                    parameters={
                        "event": {"name": name, "type": "bash", "script": "true", "status": status}
                    },
                    tags=["cronium", f"cronium-status:{status}", "cronium-type:bash"],
                    paused=True,
                    schedules=[
                        DeploymentScheduleCreate(
                            schedule=IntervalSchedule(interval=timedelta(hours=1)), active=False
                        )
                    ],
                )

    asyncio.run(deploy_the_old_way())
    assert _listed_status("ap-old-paused") == "paused"
    drafts = json.loads(cronium("events", "--status", "draft", "--json").stdout)
    assert "ap-old-draft" in [row["name"] for row in drafts]

    other = write_events(
        tmp_path / "other", {"x.yaml": EVENTS["nightly.yaml"].replace("ap-nightly", "ap-other")}
    )
    applied = cronium("apply", str(other))
    assert applied.returncode == 0, applied.stderr
    found = deployed()
    for name, status in (("ap-old-draft", "draft"), ("ap-old-paused", "live")):
        assert f"cronium-lifecycle:{status}" in found[name].tags
        assert not any(t.startswith("cronium-status:") for t in found[name].tags)
        assert found[name].paused and all(s.active for s in found[name].schedules)
    assert _listed_status("ap-old-draft") == "draft" and _listed_status("ap-old-paused") == "paused"
