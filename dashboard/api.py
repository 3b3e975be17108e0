"""The dashboard's one door to the Prefect API: run a coroutine with a client, and turn
every API failure into a `DashboardError` whose message a page can show as it is.

Only this module and the `data*` modules talk to Prefect; pages call the `data*` functions.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime
from typing import Any, TypeVar

import httpx
from prefect.client.orchestration import PrefectClient, get_client
from prefect.exceptions import ObjectNotFound
from prefect.settings import get_current_settings

from cronium_prefect.errors import CroniumError
from cronium_prefect.names import FLOW_NAME
from cronium_prefect.record import RunStatus

__all__ = [
    "DashboardError",
    "NotFound",
    "call",
    "api_errors",
    "cronium_flows",
    "status_of",
    "STATUS_STATES",
    "jsonable",
]

T = TypeVar("T")


class DashboardError(CroniumError):
    """An API failure, worded for the page."""


class NotFound(DashboardError):
    pass


def _api_url() -> str:
    return get_current_settings().api.url or "(no PREFECT_API_URL)"


def call(fetch: Callable[[PrefectClient], Awaitable[T]]) -> T:
    """Run `fetch(client)` on a fresh event loop (Streamlit runs pages in plain threads)."""

    async def go() -> T:
        async with get_client() as client:
            return await fetch(client)

    with api_errors():
        return asyncio.run(go())


@contextlib.contextmanager
def api_errors() -> Iterator[None]:
    """Turn what the API (or reaching it) raises into a DashboardError with a plain message."""
    try:
        yield
    except ObjectNotFound as exc:
        raise NotFound(f"not found in the Prefect API: {exc}") from None
    except httpx.HTTPStatusError as exc:
        code = exc.response.status_code
        if code == 404:
            raise NotFound(f"not found in the Prefect API: {exc.request.url.path}") from None
        hint = (
            " — set PREFECT_API_AUTH_STRING to the server's PREFECT_SERVER_API_AUTH_STRING"
            if code == 401
            else ""
        )
        raise DashboardError(
            f"the Prefect API at {_api_url()} answered {code} to "
            f"{exc.request.method} {exc.request.url.path}{hint}"
        ) from None
    except (httpx.HTTPError, OSError) as exc:
        raise DashboardError(
            f"cannot reach the Prefect API at {_api_url()}: {type(exc).__name__}: {exc}. "
            "Is the server running (`cronium up`)?"
        ) from None


def cronium_flows() -> dict[str, Any]:
    """The `flows` filter of every query: only the event flow's runs and deployments."""
    return {"name": {"any_": [FLOW_NAME]}}


# Prefect state name -> Cronium status (SPEC §3). Crashed is a failure the worker could not
# record itself; Late and AwaitingRetry are still on their way.
_BY_STATE = {
    "Completed": RunStatus.SUCCESS,
    "Failed": RunStatus.FAILURE,
    "Crashed": RunStatus.FAILURE,
    "TimedOut": RunStatus.TIMEOUT,
    "Partial": RunStatus.PARTIAL,
    "Cancelled": RunStatus.CANCELLED,
    "Cancelling": RunStatus.RUNNING,
    "Running": RunStatus.RUNNING,
    "Retrying": RunStatus.RUNNING,
}


def status_of(state_name: str | None, state_type: str | None = None) -> str:
    if state_name in _BY_STATE:
        return _BY_STATE[state_name].value
    if state_type in ("FAILED", "CRASHED"):
        return RunStatus.FAILURE.value
    if state_type == "COMPLETED":
        return RunStatus.SUCCESS.value
    if state_type == "CANCELLED":
        return RunStatus.CANCELLED.value
    return RunStatus.PENDING.value  # Scheduled, Late, Pending, AwaitingRetry, Paused


# Cronium status -> the Prefect state names a run filter asks for.
STATUS_STATES: dict[str, list[str]] = {}
for _state, _status in _BY_STATE.items():
    STATUS_STATES.setdefault(_status.value, []).append(_state)
STATUS_STATES[RunStatus.PENDING.value] = [
    "Scheduled",
    "Late",
    "Pending",
    "AwaitingRetry",
    "AwaitingConcurrencySlot",  # overlap: queue
]


def jsonable(value: Any) -> Any:
    """Datetimes as ISO text, so cached data pickles and tables show readable times."""
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    return value
