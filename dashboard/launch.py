"""Starting the dashboard: `streamlit run` on the entry file, bound to 127.0.0.1 unless
asked otherwise, with the Prefect API settings of the caller."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import IO

__all__ = ["APP", "SERVER", "streamlit_command", "start_dashboard", "exec_dashboard"]

APP = Path(__file__).with_name("app.py")  # the pages (what AppTest runs)
SERVER = Path(__file__).with_name("server.py")  # the pages and the sign-in routes


def streamlit_command(host: str, port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "cronium_prefect.dashboard.serve",  # streamlit run, imports done ahead of visitors
        "run",
        str(SERVER),
        "--server.address",
        host,
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--server.fileWatcherType",
        "none",
        "--browser.gatherUsageStats",
        "false",
        "--global.developmentMode",
        "false",
        "--client.toolbarMode",
        "viewer",
        # Pages show API errors as messages; a bug of ours must not show its traceback.
        "--client.showErrorDetails",
        "none",
    ]


def start_dashboard(
    host: str,
    port: int,
    api_url: str,
    log: IO[str] | int | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.Popen:
    env = {**(os.environ if env is None else env), "PREFECT_API_URL": api_url}
    return subprocess.Popen(
        streamlit_command(host, port),
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT if log else None,
        start_new_session=True,  # stopped by whoever started it, not by a terminal's Ctrl-C
    )


def exec_dashboard(host: str, port: int, api_url: str) -> None:
    """Replace this process with the dashboard server (`cronium dashboard`): a TERM or
    Ctrl-C sent to it stops the server itself, with no child left behind."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(
        sys.executable, streamlit_command(host, port), {**os.environ, "PREFECT_API_URL": api_url}
    )
