"""send_message actions: rendered, delivered through real notification blocks to a local
HTTP receiver and a real SMTP server, retried, recorded, and never changing the run."""

from __future__ import annotations

import asyncio
import json
import os
import time

import pytest
from prefect.blocks.notifications import CustomWebhookNotificationBlock
from prefect.client.orchestration import get_client

from cronium_prefect.blocks import CroniumEmail
from cronium_prefect.blocks.variable_store import BlockVariableStore, get_variable_store
from cronium_prefect.names import messages_artifact_key
from cronium_prefect.record import RunStatus
from tests.receivers import HttpReceiver, SmtpReceiver

from .helpers import event_from, logs_of, run_flow


@pytest.fixture
def receiver():
    server = HttpReceiver().start()
    yield server
    server.stop()


@pytest.fixture
def smtp():
    server = SmtpReceiver().start()
    yield server
    server.stop()


def _webhook(name: str, receiver: HttpReceiver) -> None:
    CustomWebhookNotificationBlock(
        name=name,
        url=receiver.url("/hook"),
        json_data={"subject": "{{subject}}", "text": "{{body}}"},
    ).save(name, overwrite=True)


def _artifact(key: str) -> list[dict]:
    async def read():
        async with get_client() as client:
            artifact = await client.read_latest_artifacts()
            return [a for a in artifact if a.key == key]

    found = asyncio.run(read())
    assert found, f"no artifact {key}"
    data = found[0].data
    return json.loads(data) if isinstance(data, str) else data


def _events(name: str, resource_prefix: str) -> list[dict]:
    async def read():
        async with get_client() as client:
            response = await client.request(
                "POST",
                "/events/filter",
                json={
                    "filter": {
                        "event": {"name": [name]},
                        "resource": {"id_prefix": [resource_prefix]},
                    },
                    "limit": 50,
                },
            )
            response.raise_for_status()
            return response.json()["events"]

    deadline = time.monotonic() + 15  # events are stored asynchronously
    while not (found := asyncio.run(read())) and time.monotonic() < deadline:
        time.sleep(0.5)
    return found


def test_webhook_message_is_rendered_sent_and_recorded(prefect_api, docker_client, receiver):
    _webhook("msg-hook", receiver)
    event = event_from(
        """\
        name: msg-ok
        type: bash
        script: |
          cronium_output '{"rows": 7}'
          cronium_setCondition true
        actions:
          - on: success
            send_message:
              block: msg-hook
              subject: "{{ event.name }} {{ run.status }}"
              message: "rows={{ output.rows }} condition={{ condition }}"
          - on: failure
            send_message: {block: msg-hook, message: "never sent"}
        """
    )
    state, record = run_flow(event)
    assert record["status"] == "SUCCESS"
    assert [r.json() for r in receiver.requests] == [
        {"subject": "msg-ok SUCCESS", "text": "rows=7 condition=True"}
    ]
    (delivery,) = _artifact(messages_artifact_key("msg-ok"))
    assert delivery["status"] == "sent" and delivery["attempts"] == 1
    assert delivery["channel"] == "msg-hook" and delivery["subject"] == "msg-ok SUCCESS"

    async def message_runs() -> list:
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId

        async with get_client() as client:
            return await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[record["run_id"]])
                )
            )

    (subflow,) = asyncio.run(message_runs())  # the message is a subflow of the run
    assert subflow.state.is_completed()


def test_email_reaches_the_smtp_server(prefect_api, docker_client, smtp):
    CroniumEmail(
        smtp_host="127.0.0.1",
        smtp_port=smtp.port,
        security="none",
        from_address="cronium@example.test",
        to_addresses=["ops@example.test"],
    ).save("msg-mail", overwrite=True)
    event = event_from(
        """\
        name: msg-mail-fail
        type: bash
        script: exit 4
        actions:
          - on: failure
            send_message:
              block: msg-mail
              subject: |
                {{ event.name }}
                failed
              message: "{{ run.error }}"
        """
    )
    state, record = run_flow(event)
    assert record["status"] == "FAILURE"
    (mail,) = smtp.messages
    assert mail["Subject"] == "msg-mail-fail failed"  # a header holds no line breaks
    assert mail["To"] == "ops@example.test"
    assert "exit code 4" in mail.get_payload()


def test_a_failing_receiver_is_retried_then_recorded_and_announced(
    prefect_api, docker_client, receiver
):
    receiver.status = 500
    _webhook("msg-broken", receiver)
    event = event_from(
        """\
        name: msg-broken
        type: bash
        script: echo fine
        actions:
          - on: always
            send_message: {block: msg-broken, message: "hello"}
        """
    )
    state, record = run_flow(event)
    assert record["status"] == "SUCCESS" and state.is_completed()
    retries = int(os.environ.get("CRONIUM_MESSAGE_RETRIES", "2"))
    assert len(receiver.requests) == retries + 1
    (delivery,) = _artifact(messages_artifact_key("msg-broken"))
    assert delivery["status"] == "failed" and delivery["attempts"] == retries + 1
    assert "500" in delivery["error"]
    emitted = _events("cronium.message.failed", f"cronium.message.{record['run_id']}")
    assert len(emitted) == 1 and emitted[0]["payload"]["channel"] == "msg-broken"


def test_template_errors_and_sandbox_escapes_fail_the_action_not_the_run(
    prefect_api, docker_client, receiver
):
    _webhook("msg-tpl", receiver)
    event = event_from(
        """\
        name: msg-tpl
        type: bash
        script: echo fine
        actions:
          - on: success
            send_message:
              block: msg-tpl
              message: "line one\\n{{ output.missing.deeper }}"
          - on: success
            send_message:
              block: msg-tpl
              message: "{{ ''.__class__.__mro__ }}"
          - on: success
            send_message: {block: no-such-block, message: "x"}
        """
    )
    state, record = run_flow(event)
    assert record["status"] == "SUCCESS" and state.is_completed()
    assert receiver.requests == []
    deliveries = _artifact(messages_artifact_key("msg-tpl"))
    assert [d["status"] for d in deliveries] == ["failed", "failed", "failed"]
    assert deliveries[0]["error"].startswith("actions[0].send_message.message: line 2:")
    assert deliveries[0]["action"] == "actions[0].send_message"
    assert "refused by the sandbox" in deliveries[1]["error"]
    assert "no notification block named 'no-such-block'" in deliveries[2]["error"]
    lines = logs_of(record["run_id"])
    assert any("actions[0].send_message.message: line 2:" in line for line in lines)


def test_no_action_fires_on_a_cancelled_run():
    from cronium_prefect.triggers import fires

    assert not fires("always", RunStatus.CANCELLED, True)


def test_slack_and_discord_payloads_in_each_services_format(
    prefect_api, docker_client, receiver, monkeypatch
):
    """Prefect's SlackWebhook and DiscordWebhook blocks, unchanged, with the services'
    endpoints pointed at the local receiver (Slack's and Discord's servers are the only
    thing not run here)."""
    from apprise.plugins.discord import NotifyDiscord
    from apprise.plugins.slack import NotifySlack
    from prefect.blocks.notifications import DiscordWebhook, SlackWebhook

    receiver.reply = b"ok"  # what Slack's webhook answers (Discord ignores the body)
    monkeypatch.setattr(NotifySlack, "webhook_url", receiver.url("/slack"))
    monkeypatch.setattr(NotifyDiscord, "notify_url", receiver.url("/discord"))
    SlackWebhook(url="https://hooks.slack.com/services/T000/B000/XXXXXXXX").save(
        "msg-slack", overwrite=True
    )
    DiscordWebhook(webhook_id="1234", webhook_token="tok-abc").save("msg-discord", overwrite=True)
    event = event_from(
        """\
        name: msg-chat
        type: bash
        script: echo done
        actions:
          - on: success
            send_message: {block: msg-slack, subject: "{{ event.name }}", message: "slack says {{ run.status }}"}
          - on: success
            send_message: {block: msg-discord, subject: "{{ event.name }}", message: "discord says {{ run.status }}"}
        """
    )
    state, record = run_flow(event)
    assert record["status"] == "SUCCESS"
    by_path = {r.path: r for r in receiver.requests}
    slack = by_path["/slack/T000/B000/XXXXXXXX"].json()
    assert "slack says SUCCESS" in json.dumps(slack)
    assert "attachments" in slack or "blocks" in slack  # Slack's message format
    discord = by_path["/discord/1234/tok-abc"].json()
    assert "discord says SUCCESS" in json.dumps(discord)
    assert "content" in discord or "embeds" in discord  # Discord's message format
    deliveries = _artifact(messages_artifact_key("msg-chat"))
    assert [d["status"] for d in deliveries] == ["sent", "sent"]


def test_a_run_event_whose_target_is_gone_leaves_the_run_alone(prefect_api, docker_client):
    event = event_from(
        """\
        name: msg-orphan
        type: bash
        script: echo fine
        actions:
          - {on: success, run_event: msg-never-deployed}
        """
    )
    state, record = run_flow(event)
    assert record["status"] == "SUCCESS" and state.is_completed()
    lines = logs_of(record["run_id"])
    assert any("action 0 (on success) failed" in line for line in lines), lines


def test_apply_refuses_a_message_to_a_block_that_does_not_exist(prefect_api, receiver, tmp_path):
    from .test_apply import cronium, write_events

    _webhook("msg-known", receiver)
    folder = write_events(
        tmp_path / "m",
        {
            "m.yaml": """\
            name: msg-typo
            type: bash
            script: "true"
            actions:
              - {on: failure, send_message: {block: msg-known, message: "a"}}
              - {on: failure, send_message: {block: msg-unknown, message: "b"}}
            """
        },
    )
    refused = cronium("apply", str(folder))
    assert refused.returncode == 2
    assert "actions[1].send_message.block" in refused.stderr
    assert "notification block 'msg-unknown' does not exist" in refused.stderr
    assert "msg-known" not in refused.stderr


def test_messages_see_the_runs_own_writes_from_one_read_of_the_variables(
    prefect_api, docker_client, receiver, monkeypatch
):
    store = get_variable_store()
    store.set("MSG_TOKEN", "tok-before-9c1", secret=True)
    store.set("MSG_COUNT", 1)
    reads = []
    visible = BlockVariableStore.visible
    monkeypatch.setattr(
        BlockVariableStore,
        "visible",
        lambda self, owner, keys=None: reads.append(owner) or visible(self, owner, keys),
    )
    _webhook("msg-vars-hook", receiver)
    event = event_from(
        """\
        name: msg-vars
        type: bash
        script: |
          cronium_setVariable MSG_COUNT $(( $(cronium_getVariable MSG_COUNT) + 1 ))
          cronium_setVariable MSG_TOKEN tok-after-7e4
        actions:
          - on: success
            send_message:
              block: msg-vars-hook
              message: "count={{ var.MSG_COUNT }} token={{ var.MSG_TOKEN }}"
          - on: success
            send_message: {block: msg-vars-hook, message: "again {{ var.MSG_COUNT }}"}
        """
    )
    state, record = run_flow(event)
    assert record["status"] == "SUCCESS", record
    assert sorted(record["variables_written"]) == ["MSG_COUNT", "MSG_TOKEN"]
    # The run's write is in the message; the secret it overwrote is still masked.
    assert [r.json()["text"] for r in receiver.requests] == [
        "count=2 token=***",
        "again 2",
    ]
    # Once as the run starts (the script, templates and messages all see that read), and
    # once more only to save the script's writes (a variable made secret meanwhile stays
    # secret): no read for the messages.
    assert reads == [None, None], f"the variables were read {len(reads)} times in one run"
    saved = store.get("MSG_TOKEN")
    assert saved.secret and saved.value == "tok-after-7e4"
    assert store.get("MSG_COUNT").value == 2
