"""`cronium api`: Cronium's HTTP service (webhooks, API tokens) on uvicorn."""

from __future__ import annotations

from typing import Annotated

import typer

from .common import checked_settings, err

__all__ = ["register", "serve_api"]


def register(app: typer.Typer) -> None:
    app.command("api")(api)


def serve_api(host: str, port: int, forwarded_allow_ips: str | None = None) -> None:
    """Serve until stopped (SIGINT or SIGTERM): uvicorn's own signal handling drains."""
    import uvicorn

    from cronium_prefect.service.app import create_app

    uvicorn.run(
        create_app(),
        host=host,
        port=port,
        log_level="info",
        # X-Forwarded-For is believed only from the proxies named: else a caller could
        # pick the address a webhook's allow-list checks.
        proxy_headers=forwarded_allow_ips is not None,
        forwarded_allow_ips=forwarded_allow_ips,
        server_header=False,
        timeout_keep_alive=30,
        limit_concurrency=1000,
    )


def api(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int | None, typer.Option(help="[default: CRONIUM_API_PORT, 8502]")] = None,
    forwarded_allow_ips: Annotated[
        str | None,
        typer.Option(
            help="Reverse proxies (comma-separated addresses) whose X-Forwarded-For is "
            "believed; none by default."
        ),
    ] = None,
) -> None:
    """Start Cronium's HTTP service: POST /hooks/EVENT, GET /runs/ID."""
    settings = checked_settings()
    port = port or settings.api_port
    err.print(f"Cronium API on http://{host}:{port} (webhooks: POST /hooks/EVENT)")
    serve_api(host, port, forwarded_allow_ips)
