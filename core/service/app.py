"""Cronium's HTTP service (FastAPI on uvicorn): webhooks, and run status for API tokens.
It sits in front of Prefect's API, which stays for workers and administrators.

    POST /hooks/{event}   start a run (service/hooks.py)
    GET  /runs/{run_id}   a run's state and record (a token with `read` or `run:EVENT`)
    GET  /health          200 while the service, Prefect's API and the database answer
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from cronium_prefect.access import Permission
from cronium_prefect.caps import cap_text
from cronium_prefect.flows.report import read_record
from cronium_prefect.settings import get_settings
from cronium_prefect.sizes import size_bytes

from . import audit
from .hooks import Hooks, bearer
from .store import Store, StoreUnavailable
from .tokens import token_actor

__all__ = ["create_app"]

logger = logging.getLogger("cronium.service")
_PRUNE_EVERY_S = 3600


def create_app() -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings = get_settings()
        store = Store(pooled=True)
        await store.migrate()
        async with get_client() as client:
            app.state.store = store
            app.state.client = client
            app.state.hooks = Hooks(
                store, client, size_bytes(settings.webhook_body_limit), settings.input_limit
            )
            pruning = asyncio.create_task(_prune_forever(store, settings.audit_retention_days))
            try:
                yield
            finally:
                pruning.cancel()
                await store.close()

    app = FastAPI(
        title="Cronium",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,  # nothing to browse: the routes are in docs/webhooks.md
    )

    @app.post("/hooks/{name}")
    async def hook(name: str, request: Request) -> JSONResponse:
        return await request.app.state.hooks.handle(name, request)

    @app.get("/runs/{run_id}", name="run_status")
    async def run_status(run_id: str, request: Request) -> JSONResponse:
        return await _run_status(run_id, request)

    @app.get("/health")
    async def health(request: Request) -> JSONResponse:
        async with request.app.state.store.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        problem = await request.app.state.client.api_healthcheck()  # None, or what failed
        if problem is not None:
            return JSONResponse({"error": "the Prefect API is unavailable"}, 503)
        return JSONResponse({"status": "ok"})

    @app.exception_handler(SQLAlchemyError)
    @app.exception_handler(StoreUnavailable)
    async def store_down(request: Request, exc: Exception) -> JSONResponse:
        logger.error("Cronium's tables: %s", cap_text(f"{type(exc).__name__}: {exc}", 300))
        return JSONResponse({"error": "the database is unavailable; try again"}, 503)

    @app.exception_handler(httpx.HTTPError)
    @app.exception_handler(PrefectHTTPStatusError)
    async def prefect_down(request: Request, exc: Exception) -> JSONResponse:
        logger.error("the Prefect API: %s", cap_text(f"{type(exc).__name__}: {exc}", 300))
        return JSONResponse({"error": "the Prefect API is unavailable; try again"}, 503)

    return app


_NOT_FOUND = "no such run, or the token may not read it"


async def _run_status(run_id: str, request: Request) -> JSONResponse:
    state = request.app.state
    source = request.client.host if request.client else ""
    presented = bearer(request)
    actor = await token_actor(state.store, presented, source) if presented else None
    if actor is None:
        return JSONResponse({"error": "give an API token: Authorization: Bearer crn_..."}, 401)
    try:
        flow_run = await state.client.read_flow_run(uuid.UUID(run_id))
    except (ValueError, ObjectNotFound):
        return JSONResponse({"error": _NOT_FOUND}, 404)
    event = _event_of(flow_run.parameters)
    if event is None or not actor.may(Permission.read, event):
        return JSONResponse({"error": _NOT_FOUND}, 404)
    record = await read_record(state.client, flow_run.id)
    run_state = flow_run.state
    return JSONResponse(
        {
            "run_id": str(flow_run.id),
            "event": event,
            "state": run_state.name if run_state else None,
            "final": bool(run_state and run_state.is_final()),
            "status": record.status.value if record else None,
            "record": record.to_json() if record else None,
        }
    )


def _event_of(parameters: dict[str, Any]) -> str | None:
    event = parameters.get("event")
    name = event.get("name") if isinstance(event, dict) else event
    return name if isinstance(name, str) else None


async def _prune_forever(store: Store, retention_days: int) -> None:
    while True:
        try:
            gone = await audit.prune(store, retention_days)
            if gone:
                logger.info("audit: deleted %d entries older than %d days", gone, retention_days)
        except (SQLAlchemyError, StoreUnavailable) as exc:
            logger.warning("audit retention: %s", cap_text(str(exc), 300))
        await asyncio.sleep(_PRUNE_EVERY_S)
