"""The run record as every reader gets it: typed, from the JSON the flow writes, and from
an older run's markdown summary."""

from __future__ import annotations

import json

import pytest

from cronium_prefect.errors import RunFailed
from cronium_prefect.flows.delivery import Delivery, DeliveryStatus
from cronium_prefect.flows.report import record_from_artifact, render_markdown
from cronium_prefect.names import RECORD_ARTIFACT_TYPE, Trigger
from cronium_prefect.record import RunRecord, RunStatus, ServerResult


def _record(**changes) -> RunRecord:
    record = RunRecord(
        event="nightly",
        run_id="0f1e",
        status=RunStatus.PARTIAL,
        trigger=Trigger.ACTION,
        exit_code=1,
        output={"rows": [1, 2], "text": "ünïcode | pipe"},
        condition=True,
        input=[1],
        error="web-2: exit code 1",
        attempts=2,
        log_lines=7,
        variables_written=["last"],
        servers=[
            ServerResult("web-1", RunStatus.SUCCESS, 0, output=1),
            ServerResult("web-2", RunStatus.FAILURE, 1, error="exit code 1"),
        ],
    )
    for key, value in changes.items():
        setattr(record, key, value)
    return record


def test_json_round_trip_keeps_every_field_and_its_type():
    record = _record()
    data = json.loads(json.dumps(record.to_json()))  # as the API stores and returns it
    assert data["status"] == "PARTIAL" and data["trigger"] == "action"
    assert data["servers"][1]["status"] == "FAILURE"
    back = RunRecord.from_json(data)
    assert back == record
    assert back.status is RunStatus.PARTIAL and back.trigger is Trigger.ACTION
    assert back.servers[0].status is RunStatus.SUCCESS


def test_a_newer_records_unknown_keys_are_ignored_and_a_bad_status_is_refused():
    data = _record().to_json() | {"added_later": 1}
    assert RunRecord.from_json(data) == _record()
    with pytest.raises(ValueError, match="'DONE'"):
        RunRecord.from_json(data | {"status": "DONE"})
    with pytest.raises(ValueError, match="'cron'"):
        RunRecord.from_json(data | {"trigger": "cron"})


@pytest.mark.parametrize("stored_as", ["string", "object"])
def test_the_record_artifact_is_read_whether_its_data_is_a_string_or_an_object(stored_as):
    data = _record().to_json()
    payload = json.dumps(data) if stored_as == "string" else data
    assert record_from_artifact(RECORD_ARTIFACT_TYPE, payload) == _record()


def test_an_older_runs_markdown_summary_still_gives_its_record():
    # What flows/report.py wrote before the record had an artifact of its own.
    data = _record().to_json()
    legacy = (
        "# nightly: PARTIAL\n\n| Field | Value |\n|---|---|\n| Status | PARTIAL |\n\n"
        '## Output\n\n```json\n{"rows": [1, 2]}\n```\n\n'
        f"## Record\n\n```json\n{json.dumps(data, indent=2)}\n```\n"
    )
    assert record_from_artifact("markdown", legacy) == _record()


def test_todays_summary_and_other_artifacts_hold_no_record():
    assert record_from_artifact("markdown", render_markdown(_record())) is None
    assert record_from_artifact("table", json.dumps([{"status": "sent"}])) is None
    assert record_from_artifact("markdown", None) is None


def test_the_summary_caps_a_long_output_and_says_where_the_rest_is():
    text = render_markdown(_record(output="x" * 50_000))
    assert len(text) < 25_000
    assert "characters in all: the artifact's data holds the full output" in text
    assert "| Trigger | action |" in text


def test_run_failed_carries_the_typed_record():
    failed = RunFailed(_record(status=RunStatus.TIMEOUT, error="timed out after 5 s"))
    assert str(failed) == "nightly TIMEOUT: timed out after 5 s"
    assert failed.record is not None and failed.record.status is RunStatus.TIMEOUT
    assert RunFailed("only a message").record is None


def test_a_delivery_round_trips_with_its_status_typed():
    delivery = Delivery(
        "nightly", "0f1e", "actions[0].send_message", "ops", None, DeliveryStatus.SENT, None, 1, "t"
    )
    data = json.loads(json.dumps(delivery.to_json()))
    assert data["status"] == "sent"
    back = Delivery.from_json(data)
    assert back == delivery and back.sent
    assert not Delivery.from_json(data | {"status": "failed"}).sent


@pytest.mark.parametrize(
    "change",
    [
        {"trigger": "webhook-v9"},
        {"status": "SKIPPED"},
        {"servers": [{"name": "x"}]},
        {"event": None},
    ],
    ids=["unknown trigger", "unknown status", "server without status", "no event"],
)
def test_a_record_this_version_cannot_read_is_skipped_not_raised(change):
    data = _record().to_json() | change
    if change.get("event", "") is None:
        data.pop("event")
    assert record_from_artifact(RECORD_ARTIFACT_TYPE, json.dumps(data)) is None
    assert record_from_artifact(RECORD_ARTIFACT_TYPE, "{not json") is None


def test_making_safe_masks_every_place_a_secret_can_sit_and_cuts_errors():
    from cronium_prefect.caps import ERROR_CHARS
    from cronium_prefect.variables import Visible

    secrets = Visible(
        {"TOKEN": "tok-9f8e7d", "OTHER": "oth-1234", "PIN": 48213377, "SHORT": "on"},
        {"TOKEN", "OTHER", "PIN", "SHORT"},
    ).secret_values
    record = _record(
        input={"given": "tok-9f8e7d"},
        output={"tok-9f8e7d": 1, "oth-1234": 2, "pin": 48213377, "text": "turn on", "n": 1},
        error="failed with tok-9f8e7d " + "e" * ERROR_CHARS,
    )
    record.servers[0].output = ["tok-9f8e7d"]
    record.servers[1].error = "x" * (ERROR_CHARS + 1)
    record.make_safe(secrets)
    assert record.input == {"given": "***"}
    # Two keys masked alike both stay; a short secret ("on") leaves data alone.
    assert record.output == {"***": 1, "***'": 2, "pin": "***", "text": "turn on", "n": 1}
    assert record.error.startswith("failed with *** ") and record.error.endswith(
        "characters in all]"
    )
    assert record.servers[0].output == ["***"]
    assert record.servers[1].error.endswith("characters in all]")
