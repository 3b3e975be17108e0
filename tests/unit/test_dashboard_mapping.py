"""How the dashboard names Prefect states, and the tags `apply` gives it to filter on."""

from __future__ import annotations

import pytest

from cronium_prefect.dashboard.api import STATUS_STATES, status_of
from cronium_prefect.event import Event
from cronium_prefect.flows.deploy import deployment_spec, facet_tags


@pytest.mark.parametrize(
    ("name", "type_", "status"),
    [
        ("Completed", "COMPLETED", "SUCCESS"),
        ("Failed", "FAILED", "FAILURE"),
        ("Crashed", "CRASHED", "FAILURE"),
        ("TimedOut", "FAILED", "TIMEOUT"),
        ("Partial", "FAILED", "PARTIAL"),
        ("Cancelled", "CANCELLED", "CANCELLED"),
        ("Running", "RUNNING", "RUNNING"),
        ("Retrying", "RUNNING", "RUNNING"),
        ("Scheduled", "SCHEDULED", "PENDING"),
        ("Late", "SCHEDULED", "PENDING"),
        ("Pending", "PENDING", "PENDING"),
        ("AwaitingRetry", "SCHEDULED", "PENDING"),
        ("SomethingNew", "FAILED", "FAILURE"),  # a custom state name keeps its type's meaning
        ("SomethingNew", "COMPLETED", "SUCCESS"),
    ],
)
def test_prefect_states_map_to_cronium_statuses(name, type_, status):
    assert status_of(name, type_) == status


def test_every_status_filter_asks_for_states_that_map_back_to_it():
    for status, names in STATUS_STATES.items():
        assert names, status
        for name in names:
            assert status_of(name) == status, (status, name)


def test_facet_tags_name_type_owner_servers_chained_events_and_retries():
    event = Event.model_validate(
        {
            "name": "backup",
            "type": "bash",
            "script": "true",
            "status": "paused",
            "owner": "ana",
            "run_location": "remote",
            "servers": ["web-1", "web-2"],
            "tags": ["ops"],
            "retries": 1,
            "actions": [
                {"on": "success", "run_event": "report"},
                {"on": "failure", "send_message": {"block": "ops-mail", "message": "x"}},
            ],
        }
    )
    assert facet_tags(event) == [
        "cronium-type:bash",
        "cronium-owner:ana",
        "cronium-server:web-1",
        "cronium-server:web-2",
        "cronium-runs:report",
        "cronium-retryable",
    ]
    lifecycle = "cronium-lifecycle:live"  # paused lives in Prefect's paused flag alone
    assert set(deployment_spec(event)["tags"]) == {"ops", "cronium", *facet_tags(event), lifecycle}
    assert deployment_spec(event)["paused"] is True


def test_run_and_message_artifact_keys_never_collide():
    """`cronium-{event}` and `cronium-messages-{event}` did, for an event named
    `messages-x`: the run of `messages-x` and the messages of `x` shared a key."""
    from cronium_prefect.names import messages_artifact_key, run_artifact_key

    names = ["x", "messages-x", "msg-x", "run-x", "run", "msg", "messages", "a-b", "0"]
    runs = {run_artifact_key(n) for n in names}
    messages = {messages_artifact_key(n) for n in names}
    assert len(runs) == len(messages) == len(names)
    assert runs.isdisjoint(messages)
    assert run_artifact_key("messages-x") != messages_artifact_key("x")
