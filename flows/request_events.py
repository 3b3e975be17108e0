"""`type: http` and `type: tool` events: a request or a message instead of a script.

HTTP (httpx): the URL, headers and body are templates over `event`, `input` and `var`
(secrets render as their real values here — a token in a header must work — and are
masked in every log line). Redirects are followed up to 10. The response's status,
headers and body become the run's output (JSON bodies parsed; a body over the output limit
is cut there, with `body_truncated: true` and a warning). A status outside
`expect_status` (default any 2xx) or a network error is FAILURE; both are retried per
`retries` with Prefect task retries.

Tool: the event itself sends `tool.message` through a notification block, with the same
templates, retries and delivery record as a send_message action.
"""

from __future__ import annotations

import json
import time
from typing import Any

import anyio
import httpx
from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff

from cronium_prefect.errors import CroniumError
from cronium_prefect.event import Event
from cronium_prefect.record import RunRecord, RunStatus
from cronium_prefect.settings import get_settings
from cronium_prefect.templates import render
from cronium_prefect.variables import get_variable_store
from cronium_prefect.variables import mask_secrets as mask

__all__ = ["run_http", "run_tool"]

MAX_REDIRECTS = 10


class _HttpFailed(CroniumError):
    """One attempt failed (network error or unexpected status); retried per `retries`."""

    def __init__(self, message: str, output: Any = None):
        super().__init__(message)
        self.output = output


def _render_all(value: Any, context: dict[str, Any], where: str) -> Any:
    if isinstance(value, str):
        return render(value, context, where)
    if isinstance(value, dict):
        return {k: _render_all(v, context, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_render_all(v, context, f"{where}[{i}]") for i, v in enumerate(value)]
    return value


async def _request_context(event: Event, input: Any, record: RunRecord) -> tuple[dict, list]:
    visible = await anyio.to_thread.run_sync(get_variable_store().visible, event.owner)
    context = {
        "event": {"name": event.name, "type": event.type.value, "tags": event.tags},
        "run": {"id": record.run_id, "start_time": record.start_time},
        "input": input,
        "var": visible.values,
    }
    return context, visible.secret_values


def _parse_body(response: httpx.Response, limit: int) -> tuple[Any, bool]:
    raw = response.content
    truncated = len(raw) > limit
    text = raw[:limit].decode(response.encoding or "utf-8", errors="replace")
    if not truncated and "json" in response.headers.get("content-type", ""):
        try:
            return json.loads(text), False
        except ValueError:
            pass
    return text, truncated


@task(name="http-request", persist_result=False, cache_policy=NO_CACHE)
async def _attempt(event: Event, request: dict[str, Any], secrets: list[str], log: Any) -> Any:
    spec = event.http
    assert spec is not None
    started = time.monotonic()
    shown_url = mask(request["url"], secrets)
    try:
        async with httpx.AsyncClient(
            follow_redirects=True, max_redirects=MAX_REDIRECTS, timeout=spec.timeout
        ) as client:
            response = await client.request(**request)
    except httpx.TooManyRedirects:
        raise _HttpFailed(
            f"{spec.method} {shown_url}: more than {MAX_REDIRECTS} redirects"
        ) from None
    except httpx.TimeoutException:
        raise _HttpFailed(
            f"{spec.method} {shown_url}: no answer within {spec.timeout:g} s"
        ) from None
    except httpx.HTTPError as exc:
        reason = mask(str(exc) or type(exc).__name__, secrets)
        raise _HttpFailed(f"{spec.method} {shown_url}: {reason}") from None
    limit = get_settings().output_limit
    body, truncated = _parse_body(response, limit)
    output: dict[str, Any] = {
        "status": response.status_code,
        "headers": dict(response.headers),
        "body": body,
    }
    if truncated:
        output["body_truncated"] = True
        log.warning(
            "response body is %d bytes; output keeps the first %d", len(response.content), limit
        )
    log.info(
        "%s %s -> %d (%.0f ms, %d bytes)",
        spec.method,
        shown_url,
        response.status_code,
        (time.monotonic() - started) * 1000,
        len(response.content),
    )
    expected = spec.expect_status
    ok = response.status_code in expected if expected else 200 <= response.status_code < 300
    if not ok:
        wanted = ", ".join(map(str, expected)) if expected else "2xx"
        raise _HttpFailed(
            f"{spec.method} {shown_url} answered {response.status_code} (expected {wanted})",
            output,
        )
    return output


async def run_http(event: Event, input: Any, record: RunRecord, log: Any) -> None:
    spec = event.http
    assert spec is not None
    context, secrets = await _request_context(event, input, record)
    request: dict[str, Any] = {
        "method": spec.method,
        "url": render(spec.url, context, "http.url"),
        "headers": _render_all(spec.headers, context, "http.headers"),
    }
    if isinstance(spec.body, str):
        request["content"] = render(spec.body, context, "http.body").encode()
    elif spec.body is not None:
        request["json"] = _render_all(spec.body, context, "http.body")
    attempt = _attempt
    if event.retries:
        delays = exponential_backoff(get_settings().retry_backoff)(event.retries)
        attempt = _attempt.with_options(retries=event.retries, retry_delay_seconds=delays)
    started = time.monotonic()
    state = await attempt(event, request, secrets, log, return_state=True)
    record.execution_s = round(time.monotonic() - started, 3)
    if state.is_completed():
        record.output = await state.aresult()
        record.status = RunStatus.SUCCESS
        return
    try:
        await state.aresult(raise_on_failure=True)
    except _HttpFailed as exc:
        record.output = exc.output
        record.error = str(exc)
    except Exception as exc:
        record.error = f"{type(exc).__name__}: {exc}"
    record.status = RunStatus.FAILURE


async def run_tool(event: Event, input: Any, record: RunRecord, log: Any) -> None:
    from .actions import deliver, message_context, record_deliveries

    assert event.tool is not None
    context = await message_context(event, record)
    delivery = await deliver(event, record, event.tool, "tool", context, log)
    await record_deliveries(event, record, [delivery])
    record.output = {"channel": delivery.channel, "status": delivery.status}
    if delivery.status == "sent":
        record.status = RunStatus.SUCCESS
    else:
        record.status = RunStatus.FAILURE
        record.error = delivery.error or "the message was not sent"
