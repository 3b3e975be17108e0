"""`type: http` and `type: tool` events: a request or a message instead of a script.

HTTP (httpx): the URL, headers and body are templates over `event`, `input` and `var`
(secrets render as their real values here — a token in a header must work — and are
masked in every log line). Redirects are followed up to 10. The response's status,
headers and body become the run's output (JSON bodies parsed; a body over the output limit
is cut there, with `body_truncated: true` and a warning; it is read as a stream, so a huge
answer never fills the worker's memory). `timeout` bounds the whole exchange. A status
outside `expect_status` (default any 2xx) or a network error is FAILURE; both are retried
per `retries` with Prefect task retries.

Tool: the event itself sends `tool.message` through a notification block, with the same
templates, retries and delivery record as a send_message action.
"""

from __future__ import annotations

import time
from typing import Any

import anyio
import httpx
from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff

from cronium_prefect.caps import NestedTooDeep, load_json
from cronium_prefect.errors import CroniumError, TemplateError
from cronium_prefect.event import Event
from cronium_prefect.record import RunRecord, RunStatus
from cronium_prefect.settings import get_settings
from cronium_prefect.variables import Visible
from cronium_prefect.variables import mask_secrets as mask

from .runtime import current_runtime

__all__ = ["run_http", "run_tool"]

MAX_REDIRECTS = 10


class _HttpFailed(CroniumError):
    """One attempt failed (network error or unexpected status); retried per `retries`."""

    def __init__(self, message: str, output: Any = None):
        super().__init__(message)
        self.output = output


def _build_request(spec: Any, context: dict[str, Any]) -> dict[str, Any]:
    """The request with every template in it rendered (in the runtime's sandbox)."""
    render = current_runtime().templates.render

    def render_all(value: Any, where: str) -> Any:
        if isinstance(value, str):
            return render(value, context, where)
        if isinstance(value, dict):
            return {k: render_all(v, f"{where}.{k}") for k, v in value.items()}
        if isinstance(value, list):
            return [render_all(v, f"{where}[{i}]") for i, v in enumerate(value)]
        return value

    request: dict[str, Any] = {
        "method": spec.method,
        "url": render(spec.url, context, "http.url"),
        "headers": render_all(spec.headers, "http.headers"),
    }
    if isinstance(spec.body, str):
        request["content"] = render(spec.body, context, "http.body").encode()
    elif spec.body is not None:
        request["json"] = render_all(spec.body, "http.body")
    return request


def _request_context(
    event: Event, input: Any, record: RunRecord, visible: Visible
) -> tuple[dict, list]:
    context = {
        "event": {"name": event.name, "type": event.type.value, "tags": event.tags},
        "run": {"id": record.run_id, "start_time": record.start_time},
        "input": input,
        "var": visible.values,
    }
    return context, visible.secret_values


def _parse_body(raw: bytes, truncated: bool, response: httpx.Response) -> Any:
    text = raw.decode(response.encoding or "utf-8", errors="replace")
    if not truncated and "json" in response.headers.get("content-type", ""):
        try:
            return load_json(text, "the response body")
        except (ValueError, NestedTooDeep):
            pass  # kept whole, as text
    return text


async def _read_limited(response: httpx.Response, limit: int) -> tuple[bytes, int]:
    """At most `limit` bytes of the body (the rest is counted, not kept): a huge or endless
    answer must not fill the worker's memory."""
    kept, size = bytearray(), 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if len(kept) < limit:
            kept.extend(chunk[: limit - len(kept)])
    return bytes(kept), size


@task(name="http-request", persist_result=False, cache_policy=NO_CACHE)
async def _attempt(event: Event, request: dict[str, Any], secrets: list[str], log: Any) -> Any:
    spec = event.http
    assert spec is not None
    where = f"{spec.method} {mask(request['url'], secrets)}"
    try:
        return await _exchange(spec, request, where, log)
    except _HttpFailed:
        raise
    except TimeoutError:
        raise _HttpFailed(f"{where}: no complete answer within {spec.timeout:g} s") from None
    except httpx.TooManyRedirects:
        raise _HttpFailed(f"{where}: more than {MAX_REDIRECTS} redirects") from None
    except Exception as exc:  # network errors, a bad URL, a header that is not ASCII...
        reason = mask(str(exc) or type(exc).__name__, secrets)
        raise _HttpFailed(f"{where}: {reason}") from None


class _RedirectRefused(Exception):
    pass


def _guard_redirects(first: httpx.URL, own_headers: dict[str, Any]) -> Any:
    """A request hook (called for the first request and every redirect): a redirect from
    https to plain http is refused; one to another origin loses the event's own headers, as
    httpx drops Authorization (they may carry a secret: `X-Api-Key: {{ var.KEY }}`), and is
    refused when it would send the body again (307/308 keep it; it may carry a secret)."""
    names = {name.lower() for name in own_headers}

    async def guard(request: httpx.Request) -> None:
        url = request.url
        if first.scheme == "https" and url.scheme != "https":
            raise _RedirectRefused(f"refused a redirect from https to plain http ({url})")
        if (url.scheme, url.host, url.port) != (first.scheme, first.host, first.port):
            if request.headers.get("content-length", "0") != "0" or (
                "transfer-encoding" in request.headers
            ):
                raise _RedirectRefused(
                    f"refused a redirect to another origin ({url}) that would send the "
                    "request body there again"
                )
            for name in [n for n in request.headers if n.lower() in names]:
                del request.headers[name]

    return guard


async def _exchange(spec: Any, request: dict[str, Any], where: str, log: Any) -> Any:
    started = time.monotonic()
    limit = get_settings().output_limit
    # `timeout` bounds the whole exchange, not each read: a server that drips bytes
    # cannot keep the run going.
    with anyio.fail_after(spec.timeout):
        async with httpx.AsyncClient(
            follow_redirects=True,
            max_redirects=MAX_REDIRECTS,
            timeout=spec.timeout,
            event_hooks={"request": [_guard_redirects(httpx.URL(request["url"]), spec.headers)]},
        ) as client:
            async with client.stream(**request) as response:
                raw, size = await _read_limited(response, limit)
    truncated = size > limit
    output: dict[str, Any] = {
        "status": response.status_code,
        "headers": dict(response.headers),
        "body": _parse_body(raw, truncated, response),
    }
    if truncated:
        output["body_truncated"] = True
        log.warning("response body is %d bytes; output keeps the first %d", size, limit)
    elapsed_ms = (time.monotonic() - started) * 1000
    log.info("%s -> %d (%.0f ms, %d bytes)", where, response.status_code, elapsed_ms, size)
    expected = spec.expect_status
    ok = response.status_code in expected if expected else 200 <= response.status_code < 300
    if not ok:
        wanted = ", ".join(map(str, expected)) if expected else "2xx"
        raise _HttpFailed(f"{where} answered {response.status_code} (expected {wanted})", output)
    return output


async def run_http(
    event: Event, input: Any, record: RunRecord, log: Any, variables: Visible
) -> None:
    spec = event.http
    assert spec is not None
    context, secrets = _request_context(event, input, record, variables)
    try:
        request = await anyio.to_thread.run_sync(_build_request, spec, context)
    except TemplateError as exc:  # its text may quote a secret's value
        raise TemplateError(mask(str(exc), secrets)) from None
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


async def run_tool(
    event: Event, input: Any, record: RunRecord, log: Any, variables: Visible
) -> None:
    from .actions import deliver, message_context, record_deliveries

    assert event.tool is not None
    context = await message_context(event, record, variables)
    delivery = await deliver(event, record, event.tool, "tool", context, log)
    await record_deliveries(event, record, [delivery])
    record.output = {"channel": delivery.channel, "status": delivery.status.value}
    if delivery.sent:
        record.status = RunStatus.SUCCESS
    else:
        record.status = RunStatus.FAILURE
        record.error = delivery.error or "the message was not sent"
