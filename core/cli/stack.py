"""`cronium up`: the whole stack on this machine — Prefect server on SQLite, a worker, the
example events — until Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from cronium_prefect.errors import CroniumError

from .common import checked_settings, err, fail, fail_usage, out
from .scale import (
    check_scaled,
    prepare_database,
    prepare_database_command,
    scaled_env,
    start_prefect_services,
)

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    app.command()(up)
    app.command("prepare-database")(prepare_database_command)
    app.command()(dashboard)


def dashboard(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8501,
) -> None:
    """Start the Streamlit dashboard (on 127.0.0.1 unless --host says otherwise)."""
    from prefect.settings import get_current_settings

    from cronium_prefect.dashboard.launch import exec_dashboard

    api = get_current_settings().api.url or ""
    if host not in ("127.0.0.1", "localhost", "::1"):
        err.print(_EXPOSED_NOTE, style="yellow", highlight=False)
    err.print(f"dashboard on http://{host}:{port} (Prefect API {api}); Ctrl-C stops it")
    exec_dashboard(host, port, api)  # this process becomes the server: signals reach it


_EXPOSED_NOTE = (
    "Until a user exists (`cronium user add NAME --role admin`), the dashboard has no\n"
    "sign-in: anyone who reaches it can run events and change variables."
)


def _events_folder() -> Path | None:
    """./events, else the example events shipped in the package."""
    from cronium_prefect.examples import EVENTS

    for candidate in (Path("events"), EVENTS):
        if candidate.is_dir():
            return candidate
    return None


def _docker_note() -> str | None:
    from cronium_prefect.errors import DockerUnavailable
    from cronium_prefect.flows.runtime import configured_docker_client

    try:
        configured_docker_client().close()
    except DockerUnavailable as exc:
        return f"{exc} Local (Docker) events will fail; SSH events work."
    return None


def up(
    host: Annotated[
        str,
        typer.Option(help="Address the Prefect API listens on; beyond 127.0.0.1 it needs auth."),
    ] = "127.0.0.1",
    port: Annotated[
        int | None, typer.Option(help="Port of the Prefect API [default: CRONIUM_STACK_PORT, 4200]")
    ] = None,
    dashboard_host: Annotated[
        str,
        typer.Option(help="Address the dashboard listens on (no sign-in until a user exists)."),
    ] = "127.0.0.1",
    api_host: Annotated[
        str,
        typer.Option(help="Address Cronium's HTTP service (webhooks) listens on."),
    ] = "127.0.0.1",
    database: Annotated[
        str | None,
        typer.Option(
            help="Prefect's database, a postgresql+asyncpg:// URL (or set "
            "PREFECT_SERVER_DATABASE_CONNECTION_URL: no password in `ps`) [default: SQLite]"
        ),
    ] = None,
    redis: Annotated[
        str | None,
        typer.Option(
            help="Prefect's scaled server: its events, leases and services' tasks on this "
            "Redis (redis://HOST:PORT/DB, one database per installation; or set "
            "PREFECT_REDIS_MESSAGING_URL: no password in `ps`); needs --database "
            "postgresql+asyncpg://...",
            show_default=False,
        ),
    ] = None,
    api_processes: Annotated[
        int,
        typer.Option(help="Prefect API processes (more than 1 needs --redis)."),
    ] = 1,
    insecure: Annotated[
        bool, typer.Option(help="Serve beyond this machine without authentication.")
    ] = False,
) -> None:
    """Start a Prefect server (SQLite under CRONIUM_HOME), a worker and apply ./events."""
    settings = checked_settings()  # refused before Prefect's import, named before anything
    from prefect.settings import get_current_settings

    from cronium_prefect.dashboard.launch import start_dashboard

    from .api import (
        stack_api_url,
        stack_encryption_env,
        start_prefect_server,
        wait_until_healthy,
    )

    exposure = _check_exposure(host, dashboard_host, insecure)
    database = database or os.environ.get("PREFECT_SERVER_DATABASE_CONNECTION_URL")
    database_url = _check_database(database) if database else settings.stack_database_url
    redis_from = "--redis" if redis else "PREFECT_REDIS_MESSAGING_URL"
    redis = redis or os.environ.get("PREFECT_REDIS_MESSAGING_URL")
    try:
        check_scaled(database_url, redis, api_processes, redis_from)
    except CroniumError as exc:
        raise fail_usage(str(exc)) from None
    port = port or settings.stack_port
    home = settings.home
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    configured = get_current_settings().api.url
    # Started first, stopped last: (name, process) in start order.
    children: list[tuple[str, subprocess.Popen]] = []
    env = dict(os.environ)
    # Ctrl-C is handled here alone: the children run in sessions of their own, so the
    # terminal's SIGINT does not stop them all at once (the server went first and the
    # worker printed a ConnectionClosedError traceback); they are stopped in reverse order.
    # TERM and a closed terminal's HUP stop them the same way.
    for stopping in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(stopping, _interrupt)
    try:
        local_api = f"http://{_local_address(host)}:{port}/api"
        if configured and configured not in (stack_api_url(), local_api):
            api = configured
            err.print(f"using the Prefect API at {api} (PREFECT_API_URL)", highlight=False)
        else:
            api = local_api
            log = open(home / "prefect-server.log", "a")
            server_env = {
                "PREFECT_HOME": str(home / "prefect"),
                "PREFECT_SERVER_DATABASE_CONNECTION_URL": database_url,
                "PREFECT_SERVER_LOGS_STREAM_OUT_ENABLED": "true",
                "PREFECT_SERVER_LOGS_STREAM_PUBLISHING_ENABLED": "true",
                **stack_encryption_env(),
            }
            if redis:
                err.print("preparing Prefect's database (one API process) ...", highlight=False)
                try:
                    prepare_database(port, server_env, log)
                except CroniumError as exc:
                    raise fail(f"{exc}; see {home / 'prefect-server.log'}") from None
                server_env.update(scaled_env(redis))  # for the API and services processes
            server = start_prefect_server(
                port,
                server_env,
                log=log,
                host=host,
                api_processes=api_processes,
                services=redis is None,
            )
            children.append(("Prefect server", server))
            where = (
                "PostgreSQL"
                if database_url.startswith("postgresql")
                else database_url.removeprefix("sqlite+aiosqlite:///")
            )
            if redis:
                where += f" and Redis: {api_processes} API process(es), the services apart"
            err.print(f"starting the Prefect server on {where} ...", highlight=False)
            try:
                wait_until_healthy(api, server)
            except RuntimeError as exc:
                raise fail(f"{exc}; see {home / 'prefect-server.log'}") from None
            if redis:  # once the API has migrated the database
                children.append(("Prefect services", start_prefect_services(server_env, log)))
        env["PREFECT_API_URL"] = api
        env.pop("PREFECT_REDIS_MESSAGING_URL", None)  # the server's alone: it may hold a password
        # Cronium's own tables (users, tokens, audit) beside Prefect's.
        env.setdefault("PREFECT_SERVER_DATABASE_CONNECTION_URL", database_url)
        auth = os.environ.get("PREFECT_SERVER_API_AUTH_STRING")
        if auth and not env.get("PREFECT_API_AUTH_STRING"):
            env["PREFECT_API_AUTH_STRING"] = auth  # the worker and dashboard started here
        note = _docker_note()
        if note:
            err.print(f"warning: {note}", style="yellow", highlight=False)
        folder = _events_folder()
        cli = [sys.executable, "-m", "cronium_prefect.cli"]
        if folder is not None:
            applied = subprocess.run([*cli, "apply", str(folder)], env=env)
            if applied.returncode != 0:
                err.print(f"warning: {folder} was not applied (see above)", style="yellow")
        worker = subprocess.Popen([*cli, "worker"], env=env, start_new_session=True)
        children.append(("worker", worker))
        api_log = open(home / "api.log", "a")
        service = subprocess.Popen(
            [*cli, "api", "--host", api_host, "--port", str(settings.api_port)],
            env=env,
            stdout=api_log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        children.append(("HTTP service", service))
        dashboard_log = open(home / "dashboard.log", "a")
        children.append(
            (
                "dashboard",
                start_dashboard(
                    dashboard_host, settings.dashboard_port, api, log=dashboard_log, env=env
                ),
            )
        )
        for name, child in children:  # one that failed at once says so, not "up"
            if child.poll() is not None:
                raise fail(f"the {name} exited (code {child.returncode}); see the logs in {home}")
        ui = api.removesuffix("/api")
        out.print(
            f"Cronium is up.\n  Prefect UI:  {ui}\n  API:         {api}\n"
            f"  events:      {folder or 'none found (create ./events)'}\n"
            f"  dashboard:   http://{_local_address(dashboard_host)}:{settings.dashboard_port}\n"
            f"  webhooks:    http://{_local_address(api_host)}:{settings.api_port}/hooks/EVENT\n"
            + (
                ""
                if api == stack_api_url()
                else f"Other cronium commands here: export PREFECT_API_URL={api}\n"
            )
            + (exposure.replace("{port}", str(port)) if exposure else _LOCAL_NOTE)
            + "Keep the block encryption key "
            f"({home / 'encryption.key'}, or PREFECT_SERVER_ENCRYPTION_KEY) apart from backups\n"
            "of the database.\n"
            "Ctrl-C stops everything.",
            highlight=False,
            soft_wrap=True,
        )
        # Blocked only now: children inherit the signal mask, and must obey TERM.
        signal.pthread_sigmask(signal.SIG_BLOCK, _STOP)
        signal.sigwait(_STOP)
    except KeyboardInterrupt:  # Ctrl-C, TERM or HUP while starting
        pass
    finally:
        signal.pthread_sigmask(signal.SIG_BLOCK, _STOP)  # a second Ctrl-C waits its turn
        _stop_in_reverse(children)


STOP_TIMEOUT_S = 30  # the worker's own grace for its runs' scripts is 10 s


_STOP = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def _stop_in_reverse(children: list[tuple[str, subprocess.Popen]]) -> None:
    """Dashboard, worker, then server: each one gone before the next is asked to stop,
    so that nothing still running loses the API under it. Says how long each took."""
    if not children:
        return
    err.print("stopping ...", highlight=False)
    took = []
    for name, child in reversed(children):
        started = time.monotonic()
        child.terminate()
        try:
            child.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            err.print(f"the {name} did not stop within {STOP_TIMEOUT_S} s: killed it")
            # Its whole session: the API processes of `prefect server start --workers N`
            # are its children, and would keep the port.
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
        took.append(f"{name} {time.monotonic() - started:.1f} s")
    err.print(f"stopped ({', '.join(took)})", highlight=False, soft_wrap=True)


_LOOPBACK = ("127.0.0.1", "localhost", "::1")
_EVERYWHERE = ("0.0.0.0",)
_LOCAL_NOTE = (
    "Before exposing this beyond this machine, set PREFECT_SERVER_API_AUTH_STRING (and\n"
    "PREFECT_API_AUTH_STRING for clients) and use --host.\n"
)


def _local_address(host: str) -> str:
    """Where processes on this machine reach a server listening on `host`."""
    return "127.0.0.1" if host in _EVERYWHERE or host == "localhost" else host


def _check_exposure(host: str, dashboard_host: str, insecure: bool) -> str | None:
    """None when everything stays on this machine; else what a remote worker needs (with
    `{port}` to fill in). Beyond this machine, the API needs basic auth unless --insecure;
    the dashboard, which has no login of its own, needs --insecure."""
    if ":" in host:  # the server's URL, the health check and the printed address are IPv4
        raise fail_usage(
            f"--host {host}: give an IPv4 address or a name (0.0.0.0 for every interface); "
            "IPv6 addresses are not supported"
        )
    if host in _LOOPBACK and dashboard_host in _LOOPBACK:
        return None
    auth = os.environ.get("PREFECT_SERVER_API_AUTH_STRING")
    if not insecure:
        if host not in _LOOPBACK and not auth:
            raise fail_usage(
                f"--host {host} serves the Prefect API beyond this machine: set "
                "PREFECT_SERVER_API_AUTH_STRING=user:password first (clients set "
                "PREFECT_API_AUTH_STRING to the same), or give --insecure"
            )
        if dashboard_host not in _LOOPBACK:
            raise fail_usage(
                f"--dashboard-host {dashboard_host}: the dashboard has no login, and anyone "
                "who reaches it can run events; keep it on 127.0.0.1 behind an "
                "authenticating proxy, or give --insecure"
            )
    if insecure:
        err.print(
            "WARNING: --insecure: "
            + ("the Prefect API has no authentication; " if not auth else "")
            + ("the dashboard has no login; " if dashboard_host not in _LOOPBACK else "")
            + "anyone who reaches this machine can run code on its workers.",
            style="bold red",
            highlight=False,
        )
    if host in _LOOPBACK:
        return None
    address = _reachable_address() if host in _EVERYWHERE else host
    credentials = (
        ' PREFECT_API_AUTH_STRING="<the value of PREFECT_SERVER_API_AUTH_STRING here>"'
        if auth
        else ""
    )
    return (
        "A worker on another machine (pip install cronium-prefect) needs:\n"
        f"  PREFECT_API_URL=http://{address}:{{port}}/api{credentials} cronium worker\n"
    )


def _reachable_address() -> str:
    """This machine's address on its default route (a UDP socket sends nothing)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: only selects a route
            return probe.getsockname()[0]
        except OSError:
            return socket.gethostname()


def _check_database(url: str) -> str:
    """A database Prefect's server runs on: PostgreSQL (asyncpg) or SQLite (aiosqlite).
    The URL may hold a password: an error names its scheme only."""
    if not url.startswith(("postgresql+asyncpg://", "sqlite+aiosqlite:///")):
        scheme = url.split("://", 1)[0] if "://" in url else ""
        shown = f"a {scheme}:// URL" if scheme.replace("+", "").isalnum() else "not a URL"
        raise fail_usage(
            "--database (or PREFECT_SERVER_DATABASE_CONNECTION_URL): expected a "
            f"postgresql+asyncpg:// URL (or sqlite+aiosqlite:///PATH), got {shown}"
        )
    return url
