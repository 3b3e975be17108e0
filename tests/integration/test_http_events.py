"""`type: http` and `type: tool` events against a local HTTP receiver."""

from __future__ import annotations

import asyncio
import json

import pytest
from prefect.blocks.notifications import CustomWebhookNotificationBlock
from prefect.client.orchestration import get_client

from cronium_prefect.flows.report import read_record
from tests.receivers import HttpReceiver

from .helpers import event_from, logs_of, run_flow
from .test_apply import cronium, write_events
from .test_chains import _finished_run


@pytest.fixture
def receiver():
    server = HttpReceiver(reply={"items": [1, 2, 3], "next": None}).start()
    yield server
    server.stop()


def test_http_event_renders_the_request_and_parses_json(prefect_api, receiver):
    assert cronium("var", "set", "HTTP_TOKEN", "tok-s3cret-42", "--secret").returncode == 0
    event = event_from(
        f"""\
        name: http-ok
        type: http
        http:
          method: post
          url: "{receiver.url("/api/")}{{{{ input.path }}}}?token={{{{ var.HTTP_TOKEN }}}}"
          headers: {{Authorization: "Bearer {{{{ var.HTTP_TOKEN }}}}"}}
          body: {{user: "{{{{ input.user }}}}", count: 2}}
        """
    )
    state, record = run_flow(event, input={"path": "items", "user": "ana"})
    assert record["status"] == "SUCCESS", record
    (request,) = receiver.requests
    assert request.method == "POST" and request.path == "/api/items?token=tok-s3cret-42"
    assert request.headers["Authorization"] == "Bearer tok-s3cret-42"
    assert request.json() == {"user": "ana", "count": 2}
    assert record["output"]["status"] == 200
    assert record["output"]["body"] == {"items": [1, 2, 3], "next": None}
    lines = logs_of(record["run_id"])
    assert any("POST http://127.0.0.1" in line and "-> 200" in line for line in lines), lines
    assert not any("tok-s3cret-42" in line for line in lines), "a secret reached the log"


def test_http_event_fails_on_500_after_its_retries(prefect_api, receiver):
    receiver.status = 500
    event = event_from(
        f"""\
        name: http-500
        type: http
        retries: 1
        http: {{method: GET, url: "{receiver.url("/down")}"}}
        """
    )
    state, record = run_flow(event)
    assert record["status"] == "FAILURE" and state.is_failed()
    assert len(receiver.requests) == 2
    assert record["error"].endswith("answered 500 (expected 2xx)")
    assert record["output"]["status"] == 500


def test_http_event_fails_clearly_when_nothing_listens(prefect_api):
    from tests.ports import free_port

    event = event_from(
        f"""\
        name: http-refused
        type: http
        http: {{method: GET, url: "http://127.0.0.1:{free_port()}/x", timeout: 5s}}
        """
    )
    state, record = run_flow(event)
    assert record["status"] == "FAILURE"
    assert record["error"].startswith("GET http://127.0.0.1:")
    assert "connect" in record["error"].lower()


def test_expect_status_accepts_what_it_lists(prefect_api, receiver):
    receiver.status = 404
    event = event_from(
        f"""\
        name: http-404-ok
        type: http
        http: {{method: GET, url: "{receiver.url("/gone")}", expect_status: [404]}}
        """
    )
    assert run_flow(event)[1]["status"] == "SUCCESS"


def test_http_output_feeds_a_chained_event(worker, receiver, tmp_path):
    folder = write_events(
        tmp_path / "h",
        {
            "chain.yaml": f"""\
            name: http-src
            type: http
            http: {{method: GET, url: "{receiver.url("/items")}"}}
            actions:
              - {{on: success, run_event: http-dst}}
            ---
            name: http-dst
            type: python
            script: |
              import cronium
              got = cronium.input()
              cronium.output({{"total": sum(got["body"]["items"]), "status": got["status"]}})
            """
        },
    )
    assert cronium("apply", str(folder)).returncode == 0
    done = cronium("trigger", "http-src", "--wait", "--json")
    assert done.returncode == 0, done.stderr
    target = _finished_run("http-dst")

    async def record():
        async with get_client() as client:
            return await read_record(client, target.id)

    assert asyncio.run(record()).output == {"total": 6, "status": 200}


def test_tool_event_sends_its_message(prefect_api, receiver):
    CustomWebhookNotificationBlock(
        name="tool-hook", url=receiver.url("/hook"), json_data={"text": "{{body}}"}
    ).save("tool-hook", overwrite=True)
    event = event_from(
        """\
        name: tool-note
        type: tool
        tool:
          block: tool-hook
          message: "backup of {{ input.db }} done by {{ event.name }}"
        """
    )
    state, record = run_flow(event, input={"db": "orders"})
    assert record["status"] == "SUCCESS", record
    assert [r.json() for r in receiver.requests] == [{"text": "backup of orders done by tool-note"}]
    assert record["output"] == {"channel": "tool-hook", "status": "sent"}
    receiver.status = 500
    state, record = run_flow(event, input={"db": "orders"})
    assert record["status"] == "FAILURE" and "500" in record["error"]
    json.dumps(record)  # the record stays JSON


def test_http_errors_never_show_a_secret_and_big_bodies_are_cut(prefect_api, receiver):
    assert cronium("var", "set", "HTTP_PORT_SECRET", "s3cr3t-port", "--secret").returncode == 0
    bad = event_from(
        """\
        name: http-bad-url
        type: http
        http: {method: GET, url: "http://127.0.0.1:{{ var.HTTP_PORT_SECRET }}/"}
        """
    )
    state, record = run_flow(bad)
    assert record["status"] == "FAILURE"
    assert "s3cr3t-port" not in json.dumps(record) and "***" in record["error"]
    assert not any("s3cr3t-port" in line for line in logs_of(record["run_id"]))

    from cronium_prefect.settings import get_settings

    limit = get_settings().output_limit
    receiver.reply = b"x" * (limit + 500_000)
    big = event_from(
        f"name: http-big\ntype: http\nhttp: {{method: GET, url: '{receiver.url()}'}}\n"
    )
    state, record = run_flow(big)
    assert record["status"] == "SUCCESS"
    assert record["output"]["body_truncated"] is True
    assert len(record["output"]["body"]) == limit
