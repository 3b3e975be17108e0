"""`type: http` and `type: tool` events against a local HTTP receiver."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from prefect.blocks.notifications import CustomWebhookNotificationBlock
from prefect.client.orchestration import get_client

from cronium_prefect.blocks.variable_store import get_variable_store
from cronium_prefect.flows.report import read_record
from tests.receivers import HttpReceiver, self_signed

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


TOKEN = "tok-redirect-77"
OWN_HEADERS = (
    '{X-Api-Key: "{{ var.REDIRECT_TOKEN }}", X-Trace: plain, '
    'Authorization: "Bearer {{ var.REDIRECT_TOKEN }}"}'
)


def _redirecting(to: str, status: int = 302, **options) -> HttpReceiver:
    return HttpReceiver(status=status, reply=b"", headers={"Location": to}, **options).start()


def _http_event(name: str, url: str) -> Any:
    return event_from(
        f"name: {name}\ntype: http\nhttp: {{method: GET, url: '{url}', headers: {OWN_HEADERS}}}\n"
    )


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_to_another_origin_loses_the_events_own_headers(prefect_api, status):
    get_variable_store().set("REDIRECT_TOKEN", TOKEN, secret=True)
    landing = HttpReceiver().start()
    away = _redirecting(landing.url("/landed"), status)
    home = HttpReceiver(status=status, reply=b"").start()
    # The same origin: the headers go along (it redirects for ever, so that run fails).
    home.headers["Location"] = "/landed"
    try:
        for name, start in (("http-hop-away", away), ("http-hop-home", home)):
            state, record = run_flow(_http_event(name, start.url("/start")))
            assert record["status"] == ("SUCCESS" if start is away else "FAILURE"), record
        (landed,) = landing.requests
        assert not {"x-api-key", "x-trace", "authorization"} & {k.lower() for k in landed.headers}
        came_home = [r for r in home.requests if r.path == "/landed"]
        assert came_home and came_home[0].headers.get("X-Api-Key") == TOKEN
        assert came_home[0].headers.get("X-Trace") == "plain"
    finally:
        for server in (landing, away, home):
            server.stop()


def test_a_redirect_from_https_to_plain_http_is_refused(prefect_api, tmp_path, monkeypatch):
    get_variable_store().set("REDIRECT_TOKEN", TOKEN, secret=True)
    certificate = self_signed(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate))  # the client trusts it
    plain = HttpReceiver().start()
    secure = HttpReceiver(certfile=certificate).start()
    to_plain = _redirecting(plain.url("/landed"), certfile=certificate)
    to_secure = _redirecting(secure.url("/landed"), certfile=certificate)
    try:
        state, refused = run_flow(_http_event("http-tls-down", to_plain.url("/start")))
        assert refused["status"] == "FAILURE"
        assert "refused a redirect from https to plain http" in refused["error"]
        assert plain.requests == []  # nothing went out in the clear
        state, followed = run_flow(_http_event("http-tls-up", to_secure.url("/start")))
        assert followed["status"] == "SUCCESS", followed
        (landed,) = secure.requests
        assert landed.path == "/landed" and landed.headers.get("X-Api-Key") is None
    finally:
        for server in (plain, secure, to_plain, to_secure):
            server.stop()


@pytest.mark.parametrize("status", [307, 308])
def test_a_redirect_to_another_origin_that_would_resend_the_body_is_refused(prefect_api, status):
    get_variable_store().set("REDIRECT_TOKEN", TOKEN, secret=True)
    elsewhere = HttpReceiver().start()
    away = _redirecting(elsewhere.url("/token"), status)
    try:
        event = event_from(
            f"name: http-body-away\ntype: http\nhttp: {{method: POST, url: '{away.url('/t')}', "
            "body: {client_secret: '{{ var.REDIRECT_TOKEN }}'}}\n"
        )
        state, record = run_flow(event)
        assert record["status"] == "FAILURE"
        assert "would send the request body there again" in record["error"]
        assert elsewhere.requests == []  # the secret body never left for the other origin
    finally:
        elsewhere.stop()
        away.stop()
