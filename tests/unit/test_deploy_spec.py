"""What `apply` writes stays small and in step with the flow, refused writes are retried
soon, and the commands that only talk to the API stay light."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import httpx
import pytest
from prefect.exceptions import PrefectHTTPStatusError
from prefect.utilities.callables import parameter_schema

from cronium_prefect import Event
from cronium_prefect.cli.listing import columns
from cronium_prefect.flows import deploy

EVENT = Event.model_validate(
    {"name": "spec", "type": "bash", "script": "echo hi", "schedule": {"cron": "0 3 * * *"}}
)


def test_parameter_schema_names_the_flows_parameters_in_order():
    from cronium_prefect.flows.event_flow import cronium_event

    derived = parameter_schema(cronium_event.fn).model_dump_for_openapi()
    ours = deploy.PARAMETER_SCHEMA
    assert list(ours["properties"]) == list(derived["properties"])
    for name, prop in derived["properties"].items():
        assert ours["properties"][name]["position"] == prop["position"]
        assert ours["properties"][name].get("default") == prop.get("default")
    assert ours["required"] == derived["required"]
    assert "definitions" not in ours and "$defs" not in ours


def test_each_deployment_carries_the_small_schema_and_its_version_covers_it(monkeypatch):
    spec = deploy.deployment_spec(EVENT)
    assert spec["parameter_openapi_schema"] is deploy.PARAMETER_SCHEMA
    # Prefect returns this schema with every deployment it lists: it must stay small.
    assert len(json.dumps(deploy.PARAMETER_SCHEMA)) < 1500
    changed = {**deploy.PARAMETER_SCHEMA, "title": "Other"}
    monkeypatch.setattr(deploy, "PARAMETER_SCHEMA", changed)
    assert deploy.deployment_spec(EVENT)["version"] != spec["version"]


def test_api_commands_do_not_load_the_flow_engine():
    code = (
        "import sys, cronium_prefect.cli, cronium_prefect.cli.events;"
        "import cronium_prefect.flows.listing, cronium_prefect.flows.deploy;"
        "print(sorted(m for m in sys.modules if m.endswith('event_flow') or m == 'docker'))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
    # The flow is still there for whoever asks for it.
    from cronium_prefect.flows import FLOW_NAME, cronium_event

    assert cronium_event.name == FLOW_NAME == "cronium-event"


def test_event_table_is_plain_aligned_columns():
    text = columns(("event", "status"), [("a-long-name", "active"), ("b", "paused")])
    assert text.splitlines() == [
        "EVENT        STATUS",
        "a-long-name  active",
        "b            paused",
    ]


def _refusal(status: int) -> PrefectHTTPStatusError:
    request = httpx.Request("POST", "http://prefect/api/deployments/")
    response = httpx.Response(status, request=request)
    return PrefectHTTPStatusError.from_httpx_error(
        httpx.HTTPStatusError("refused", request=request, response=response)
    )


def test_a_refused_write_is_tried_again_within_milliseconds(monkeypatch):
    calls = 0
    waits: list[float] = []

    async def write() -> str:
        nonlocal calls
        calls += 1
        if calls < 4:
            raise _refusal(503)  # SQLite's "database is locked"
        return "id"

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr(deploy.asyncio, "sleep", sleep)
    assert asyncio.run(deploy.retried(write)) == "id"
    # Prefect's client would have slept 2 + 4 + 8 s: ours waits ~50, ~100, ~200 ms.
    assert calls == 4 and len(waits) == 3 and sum(waits) < 0.6


def test_prefects_client_tries_a_locked_database_again_after_50_ms_not_2_s(monkeypatch):
    from prefect.client import base
    from prefect.client.base import PrefectHttpxAsyncClient

    answers = [503, 503, 201]

    def server(request: httpx.Request) -> httpx.Response:
        return httpx.Response(answers.pop(0), json={"id": "x"})

    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr(base.anyio, "sleep", sleep)  # Prefect's client waits with it

    async def create() -> None:
        async with PrefectHttpxAsyncClient(
            transport=httpx.MockTransport(server),
            base_url="http://prefect/api",
            event_hooks={"response": [deploy._retry_soon]},
        ) as client:
            response = await client.post("/deployments/", json={})
            assert response.status_code == 201

    asyncio.run(create())
    assert answers == [] and len(waits) == 2 and max(waits) < 0.1  # without the hook: 2 s, 4 s


def test_other_refusals_are_not_retried():
    calls = []

    async def write() -> None:
        calls.append(1)
        raise _refusal(409)

    with pytest.raises(PrefectHTTPStatusError):
        asyncio.run(deploy.retried(write))
    assert calls == [1]
