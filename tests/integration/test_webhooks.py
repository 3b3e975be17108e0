"""Webhooks through the real HTTP service, Prefect server and (for one) worker and Docker:
`POST /hooks/{event}` with a bearer secret, an API token, an HMAC signature and GitHub's
signature; every refusal's status, that it started nothing, and what the audit log kept."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

from cronium_prefect.names import WEBHOOK_TAG, Trigger
from tests.integration.front_door import FrontDoor, cli, database_env, save_secret, user_token
from tests.processes import settles, stop

POOL = "hooks-test"  # served by no worker: its runs are only counted
RUN_POOL = "hooks-run"  # served by the worker of the one test that runs a script
TOKEN = "tok-" + uuid.uuid4().hex  # the bearer secret of the token hooks
SIGNING = "sig-" + uuid.uuid4().hex
GITHUB = "gh-" + uuid.uuid4().hex
UNAUTHORIZED = {"error": "no such hook, or the credentials are missing or wrong"}

EVENTS = f"""
name: hook-token
type: bash
status: active
pool: {POOL}
script: cronium_input
webhook: {{secret: hook-token-secret}}
---
name: hook-hmac
type: bash
status: active
pool: {POOL}
script: cronium_input
webhook: {{auth: hmac, secret: hook-signing, replay_window: 60}}
---
name: hook-github
type: bash
status: active
pool: {POOL}
script: cronium_input
webhook: {{auth: github, secret: hook-github}}
---
name: hook-rate
type: bash
status: active
pool: {POOL}
script: "true"
webhook: {{secret: hook-token-secret, rate: 3/minute}}
---
name: hook-far
type: bash
status: active
pool: {POOL}
script: "true"
webhook: {{secret: hook-token-secret, allow: [10.0.0.0/8, "fd00::/8"]}}
---
name: hook-near
type: bash
status: active
pool: {POOL}
script: "true"
webhook: {{secret: hook-token-secret, allow: [127.0.0.0/8]}}
---
name: hook-paused
type: bash
status: paused
pool: {POOL}
script: "true"
webhook: {{secret: hook-token-secret}}
---
name: hook-archived
type: bash
status: archived
pool: {POOL}
script: "true"
webhook: {{secret: hook-token-secret}}
---
name: hook-tokens-only
type: bash
status: active
pool: {POOL}
script: "true"
webhook: {{}}
---
name: hook-run
type: bash
status: active
pool: {RUN_POOL}
script: cronium_input
webhook: {{secret: hook-token-secret}}
---
name: no-hook
type: bash
status: active
pool: {POOL}
script: "true"
"""


@pytest.fixture(scope="module")
def door(prefect_api, tmp_path_factory):
    folder = tmp_path_factory.mktemp("front-door")
    save_secret("hook-token-secret", TOKEN)
    save_secret("hook-signing", SIGNING)
    save_secret("hook-github", GITHUB)
    (folder / "events.yaml").write_text(EVENTS)
    applied = cli("apply", str(folder / "events.yaml"))
    assert applied.returncode == 0, applied.stderr + applied.stdout
    service = FrontDoor(folder)
    yield service
    service.stop()


async def _runs(event: str) -> list:
    async with get_client() as client:
        return await client.read_flow_runs(
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[event]))
        )


def runs_of(event: str) -> list:
    import asyncio

    return asyncio.run(_runs(event))


def started(response, event: str, body) -> str:
    """The run a 202 names: it exists, tagged and parametrised as a webhook's run."""
    import asyncio

    assert response.status_code == 202, response.text
    answer = response.json()
    assert answer["event"] == event
    assert answer["status_url"].endswith(f"/runs/{answer['run_id']}")

    async def read():
        async with get_client() as client:
            return await client.read_flow_run(uuid.UUID(answer["run_id"]))

    run = asyncio.run(read())
    assert Trigger.WEBHOOK.tag in run.tags and f"{WEBHOOK_TAG}{event}" in run.tags
    assert run.parameters["trigger"] == "webhook"
    assert run.parameters["input"] == body
    return answer["run_id"]


def test_bearer_secret_starts_one_run_and_every_wrong_credential_is_the_same_401(door):
    body = {"ref": "main", "n": [1, 2.5, None, True], "text": "é ✓"}
    before = len(runs_of("hook-token"))
    started(door.bearer("hook-token", TOKEN, json.dumps(body).encode()), "hook-token", body)
    wrong = [
        {},  # no credentials
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": f"Bearer {TOKEN[:-1]}"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": f"bearer{TOKEN}"},
        {"Authorization": "Bearer  -"},
        {"Authorization": f"Bearer {SIGNING}"},  # another hook's secret
        {"X-Cronium-Signature": "sha256=00", "X-Cronium-Timestamp": str(int(time.time()))},
    ]
    for headers in wrong:
        refused = door.post("hook-token", b"{}", **headers, **{"Content-Type": "application/json"})
        assert (refused.status_code, refused.json()) == (401, UNAUTHORIZED), headers
    # Unknown hooks, events without a hook, and names that are no names answer the same.
    for hook in ["nope", "no-hook", "hook-tokens-only", "HOOK-TOKEN", "hook-token.."]:
        refused = door.bearer(hook, TOKEN)
        assert (refused.status_code, refused.json()) == (401, UNAUTHORIZED), hook
    assert len(runs_of("hook-token")) == before + 1


def test_api_tokens_by_scope_role_expiry_and_revocation(door):
    runner = user_token("hook-ops", "operator", "run:hook-tok*")
    other_scope = user_token("hook-ops", "operator", "run:backup-*")
    read_only = user_token("hook-ops", "operator", "read")
    viewer = user_token("hook-viewer", "viewer", "run:*")
    short = user_token("hook-ops", "operator", "run:*", expires=3)
    before = len(runs_of("hook-tokens-only"))
    started(door.bearer("hook-tokens-only", runner, b"[1]"), "hook-tokens-only", [1])
    started(door.bearer("hook-token", runner, b"2"), "hook-token", 2)  # any token hook
    for token in [other_scope, read_only, viewer, runner + "x", "crn_" + "a" * 12 + "_" + "b" * 43]:
        refused = door.bearer("hook-tokens-only", token)
        assert (refused.status_code, refused.json()) == (401, UNAUTHORIZED), token[:20]
    # A signed hook takes no token.
    assert door.bearer("hook-hmac", runner).status_code == 401
    time.sleep(3.5)
    assert door.bearer("hook-tokens-only", short).status_code == 401  # expired
    token_id = runner.split("_")[1]
    assert cli("token", "revoke", token_id).returncode == 0
    assert door.bearer("hook-tokens-only", runner).status_code == 401
    assert len(runs_of("hook-tokens-only")) == before + 1


def test_hmac_signature_replay_window_and_replays(door):
    body = json.dumps({"deploy": "v2"}).encode()
    before = len(runs_of("hook-hmac"))
    now = int(time.time())
    first = door.hmac("hook-hmac", SIGNING, body, at=now)
    started(first, "hook-hmac", {"deploy": "v2"})
    # The same signed request again: a replay, refused within its window.
    assert door.hmac("hook-hmac", SIGNING, body, at=now).status_code == 401
    # Same body a second later: a new signature, accepted.
    started(door.hmac("hook-hmac", SIGNING, body, at=now + 1), "hook-hmac", {"deploy": "v2"})
    refusals = [
        door.hmac("hook-hmac", SIGNING, body, at=now - 120),  # older than the window
        door.hmac("hook-hmac", SIGNING, body, at=now + 120),  # from the future
        door.hmac("hook-hmac", "not-the-secret", body),
        door.hmac("hook-hmac", SIGNING, body, **{"X-Cronium-Timestamp": "soon"}),
        door.hmac("hook-hmac", SIGNING, body, **{"X-Cronium-Timestamp": "1e9"}),
        door.hmac("hook-hmac", SIGNING, body, **{"X-Cronium-Signature": "sha256=" + "0" * 64}),
        door.hmac("hook-hmac", SIGNING, body, **{"X-Cronium-Signature": ""}),
        door.post("hook-hmac", body, **{"X-Hub-Signature-256": "sha256=" + "0" * 64}),
    ]
    # A signature over another body does not carry over.
    stamp = str(int(time.time()))
    from cronium_prefect.webhook import sign

    refusals.append(
        door.post(
            "hook-hmac",
            b'{"deploy": "v3"}',
            **{
                "X-Cronium-Timestamp": stamp,
                "X-Cronium-Signature": sign(SIGNING, stamp, body),
                "Content-Type": "application/json",
            },
        )
    )
    assert [r.status_code for r in refusals] == [401] * len(refusals)
    assert len(runs_of("hook-hmac")) == before + 2


def test_a_github_signed_push_payload_as_github_sends_it(door):
    payload = {
        "ref": "refs/heads/main",
        "before": "0" * 40,
        "after": "a" * 40,
        "repository": {"full_name": "acme/site", "private": True},
        "pusher": {"name": "octocat", "email": "octocat@example.com"},
        "commits": [{"id": "a" * 40, "message": "Fix the build\n\nDetails…"}],
    }
    body = json.dumps(payload, indent=2).encode()  # GitHub's bytes, not our formatting
    started(door.github("hook-github", GITHUB, body), "hook-github", payload)
    signed_other = door.github("hook-github", GITHUB, body)
    assert signed_other.status_code == 202
    tampered = door.http.post(
        "/hooks/hook-github",
        content=body.replace(b"main", b"evil"),
        headers={
            "Content-Type": "application/json",
            "X-Hub-Signature-256": signed_other.request.headers["X-Hub-Signature-256"],
        },
    )
    assert tampered.status_code == 401
    assert door.github("hook-github", "other", body).status_code == 401


def test_bodies_over_the_cap_not_json_or_invalid_json_and_nothing_starts(door):
    before = len(runs_of("hook-token"))
    auth = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    big = b'{"x": "' + b"a" * 300_000 + b'"}'
    assert door.post("hook-token", big, **auth).status_code == 413

    def chunks():  # no Content-Length: counted while read
        for _ in range(40):
            yield b"a" * 10_000

    chunked = door.http.post("/hooks/hook-token", content=chunks(), headers=auth)
    assert chunked.status_code == 413
    # An oversized body is refused before its credentials are even looked at.
    assert door.post("nope", big).status_code == 413
    for content_type in ["text/plain", "application/x-www-form-urlencoded", "", "json"]:
        refused = door.post(
            "hook-token",
            b'{"a": 1}',
            Authorization=f"Bearer {TOKEN}",
            **({"Content-Type": content_type} if content_type else {}),
        )
        assert refused.status_code == 415, content_type
    for invalid in [
        b"{",
        b"{'a': 1}",
        b"[1, 2,]",
        b'{"a": NaN}',
        b"[Infinity]",
        b"\xff\xfe{}",
        b'"\xed\xa0\x80"',  # a lone surrogate, encoded
        b"[" * 100 + b"]" * 100,  # deeper than 64 levels
        b"[" * 50_000,
    ]:
        refused = door.post("hook-token", invalid, **auth)
        assert refused.status_code == 422, (invalid[:20], refused.text)
        assert "Traceback" not in refused.text
    # A JSON content type with +json, and an empty body (no input), are fine.
    started(
        door.post("hook-token", b"[3]", **{**auth, "Content-Type": "application/vnd.x+json"}),
        "hook-token",
        [3],
    )
    started(door.post("hook-token", b"", Authorization=f"Bearer {TOKEN}"), "hook-token", None)
    assert len(runs_of("hook-token")) == before + 2


def test_rate_limit_answers_429_with_retry_after(door):
    before = len(runs_of("hook-rate"))
    answers = [door.bearer("hook-rate", TOKEN).status_code for _ in range(5)]
    assert answers == [202, 202, 202, 429, 429]
    limited = door.bearer("hook-rate", TOKEN)
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    # Callers without credentials do not spend the hook's rate (nor get told about it).
    assert door.bearer("hook-rate", "wrong").status_code == 401
    assert len(runs_of("hook-rate")) == before + 3


def test_allow_list_paused_and_archived(door):
    assert door.bearer("hook-far", TOKEN).json() == UNAUTHORIZED  # 127.0.0.1 not allowed
    started(door.bearer("hook-near", TOKEN), "hook-near", {})
    for event, status in [("hook-paused", "paused"), ("hook-archived", "archived")]:
        refused = door.bearer(event, TOKEN)
        assert refused.status_code == 409 and status in refused.json()["error"]
        assert runs_of(event) == []
    # A paused event's hook says who it is only to a caller with credentials.
    assert door.bearer("hook-paused", "wrong").status_code == 401


def test_run_status_for_tokens(door):
    reader = user_token("hook-reader", "viewer", "read")
    runner = user_token("hook-runner", "operator", "run:hook-token")
    elsewhere = user_token("hook-runner", "operator", "run:hook-near")
    run_id = started(door.bearer("hook-token", TOKEN, b"7"), "hook-token", 7)
    for token in [reader, runner]:
        answer = door.http.get(f"/runs/{run_id}", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200
        assert answer.json()["event"] == "hook-token" and answer.json()["run_id"] == run_id
    for token, status in [(elsewhere, 404), (TOKEN, 401), ("-", 401)]:
        answer = door.http.get(f"/runs/{run_id}", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == status, token[:10]
    for missing in [str(uuid.uuid4()), "not-a-uuid", "..%2f..%2fapi"]:
        answer = door.http.get(f"/runs/{missing}", headers={"Authorization": f"Bearer {reader}"})
        assert answer.status_code == 404


def test_a_webhook_run_through_the_worker_and_docker(door, docker_client, tmp_path, monkeypatch):
    log = open(tmp_path / "worker.log", "w")
    worker = subprocess.Popen(
        [sys.executable, "-m", "cronium_prefect.cli", "worker", "--pool", RUN_POOL],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=database_env(),
    )
    try:
        response = door.bearer("hook-run", TOKEN, b'{"from": "a webhook"}')
        run_id = started(response, "hook-run", {"from": "a webhook"})
        reader = user_token("hook-reader", "viewer", "read")

        def record():
            answer = door.http.get(f"/runs/{run_id}", headers={"Authorization": f"Bearer {reader}"})
            return answer.json()["record"] if answer.json()["final"] else None

        if not settles(lambda: record() is not None, 120):
            pytest.fail(
                f"the webhook's run did not finish:\n{(tmp_path / 'worker.log').read_text()}"
            )
        final = record()
        assert final["status"] == "SUCCESS", final
        assert final["trigger"] == "webhook" and final["webhook"] == "hook-run"
        assert final["output"] is None and final["input"] == {"from": "a webhook"}
        shown = cli("logs", run_id)
        assert '{"from": "a webhook"}' in shown.stdout or '{"from":"a webhook"}' in shown.stdout
        # The dashboard's run page says so too.
        import streamlit as st
        from streamlit.testing.v1 import AppTest

        from cronium_prefect.dashboard.launch import APP

        st.cache_data.clear()
        st.cache_resource.clear()  # the dashboard's tables: a fresh file, no users
        monkeypatch.setenv(
            "PREFECT_SERVER_DATABASE_CONNECTION_URL", f"sqlite+aiosqlite:///{tmp_path}/d.db"
        )
        page = AppTest.from_file(str(APP), default_timeout=60)
        page.run()
        page.query_params["id"] = run_id
        page.switch_page("app_pages/run.py").run()
        shown = "\n".join(str(m.value) for m in page.markdown)
        assert "trigger **webhook** (the webhook of **hook-run**)" in shown, shown
        st.cache_resource.clear()
    finally:
        stop(worker)
        log.close()


def test_no_secret_or_body_reaches_the_service_log_or_the_audit_log(door):
    marker = "BODY-" + uuid.uuid4().hex
    body = json.dumps({"password": marker}).encode()
    door.bearer("hook-token", TOKEN, body)
    door.bearer("hook-token", TOKEN + "x", body)
    door.hmac("hook-hmac", SIGNING, body)
    door.hmac("hook-hmac", "wrong-" + SIGNING, body)
    door.github("hook-github", GITHUB, body)
    door.post("hook-token", b"{" + marker.encode(), Authorization=f"Bearer {TOKEN}")
    door.post("%1b%5b8m%1b%5d0;owned%07", body)  # terminal codes as a hook's name
    audit = cli("audit", "--json").stdout
    assert "\\u001b" not in audit and "\x1b" not in audit  # recorded as "?"
    shown = cli("audit").stdout
    assert "\x1b" not in shown
    for text in [door.log(), audit]:
        for secret in [TOKEN, SIGNING, GITHUB, marker]:
            assert secret not in text
    assert "Traceback" not in door.log()


def test_a_workflow_declares_a_webhook_like_an_event(door, tmp_path):
    (tmp_path / "flow.yaml").write_text(
        f"kind: workflow\nname: hook-flow\nstatus: active\npool: {POOL}\n"
        "webhook: {secret: hook-token-secret}\nsteps:\n  - {name: only, event: no-hook}\n"
    )
    applied = cli("apply", str(tmp_path / "flow.yaml"))
    assert applied.returncode == 0, applied.stderr
    assert door.bearer("hook-flow", "wrong-token", b"{}").status_code == 401
    run_id = started(door.bearer("hook-flow", TOKEN, b'{"n": 1}'), "hook-flow", {"n": 1})

    async def read():
        async with get_client() as client:
            run = await client.read_flow_run(uuid.UUID(run_id))
            return await client.read_deployment(run.deployment_id)

    import asyncio

    assert asyncio.run(read()).entrypoint.endswith("workflow_flow.cronium_workflow")
