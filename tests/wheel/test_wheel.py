"""The package as a user installs it: the wheel (built from the sdist by tests/run.sh)
in a fresh venv outside the checkout. Its own `cronium` prints its version, writes a
starter events folder, runs an example, and brings the whole stack up (server, worker,
dashboard) from that folder, every dashboard page drawn in Chromium, then stops cleanly.

Collected last (tests/wheel sorts after the others): the install runs in the background
while the other tests do."""

from __future__ import annotations

import json
import os
import subprocess
import time
import zipfile
from pathlib import Path

import pytest

from tests.browser import SHOTS, body, chromium, drawn, open_page, wait
from tests.integration.test_up import start_up, stop_up, wait_for_dashboard
from tests.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
PAGES = {"": "Overview", "events": "Events", "runs": "Runs", "servers": "Servers"}
PAGES["variables"] = "Variables"
INSTALL_WAIT_S = 900  # the background install downloads every dependency


@pytest.fixture(scope="module")
def installed() -> Path:
    """The venv holding the installed wheel, once tests/run.sh's background job is done."""
    where = os.environ.get("CRONIUM_WHEEL_DIR")
    if not where:
        from tests.conftest import _unavailable

        _unavailable("the wheel test needs CRONIUM_WHEEL_DIR (set by tests/run.sh)")
    directory = Path(where)
    deadline = time.monotonic() + INSTALL_WAIT_S
    while not (directory / "done").exists():
        assert time.monotonic() < deadline, "the wheel was not installed in time"
        time.sleep(2)
    log = (directory / "build.log").read_text(errors="replace")
    assert (directory / "done").read_text().strip() == "0", log[-5000:]
    return directory / "venv"


def _env(venv: Path, **extra: str) -> dict[str, str]:
    """The user's shell: the venv's bin first; nothing that points into the checkout."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{venv / 'bin'}:{env['PATH']}"
    env.update(extra)
    return env


def _cronium(venv: Path, *args: str, cwd: Path, env: dict[str, str], timeout: float = 180):
    return subprocess.run(
        [str(venv / "bin" / "cronium"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_the_wheel_holds_what_an_editable_install_would(installed, tmp_path):
    (wheel,) = (Path(os.environ["CRONIUM_WHEEL_DIR"]) / "dist").glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    package = {
        str(p.relative_to(ROOT))
        for folder in ("dashboard/app_pages", "runtime_helpers", "examples/events")
        for p in (ROOT / folder).rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    mapped = {f"cronium_prefect/{name}" for name in package}
    missing = {m for m in mapped if m not in names}
    assert not missing, f"not in the wheel: {sorted(missing)}"
    located = subprocess.run(
        [
            str(installed / "bin" / "python"),
            "-c",
            "import cronium_prefect; print(cronium_prefect.__file__)",
        ],
        cwd=tmp_path,
        env=_env(installed),
        capture_output=True,
        text=True,
    )
    assert located.stdout.startswith(str(installed)), located.stdout + located.stderr


def test_the_installed_cronium_inits_runs_and_brings_the_stack_up(
    installed, prefect_api, docker_client, tmp_path
):
    from cronium_prefect.version import __version__

    env = _env(installed)
    version = _cronium(installed, "--version", cwd=tmp_path, env=env)
    assert version.returncode == 0 and version.stdout.strip() == f"cronium {__version__}"
    shown = _cronium(installed, "--help", cwd=tmp_path, env=env)
    assert shown.returncode == 0 and "init" in shown.stdout and "worker" in shown.stdout

    project = tmp_path / "project"
    made = _cronium(installed, "init", str(project), cwd=tmp_path, env=env)
    assert made.returncode == 0, made.stderr
    assert (project / "events" / "hello.yaml").is_file()
    assert (project / "events" / "scripts" / "report.py").is_file()
    again = _cronium(installed, "init", str(project), cwd=tmp_path, env=env)
    assert again.returncode == 2 and "nothing was written" in again.stderr

    ran = _cronium(
        installed,
        "run",
        "events/hello.yaml",
        "--input",
        '"Wheel"',
        "--json",
        cwd=project,
        env=env,
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert json.loads(ran.stdout.splitlines()[-1])["output"] == {"greeted": "Wheel"}

    port, dashboard_port = free_port(), free_port()
    up_env = _env(
        installed,
        CRONIUM_HOME=str(tmp_path / "home"),
        CRONIUM_STACK_PORT=str(port),
        CRONIUM_DASHBOARD_PORT=str(dashboard_port),
    )
    up_env.pop("PREFECT_API_URL", None)
    log = tmp_path / "up.log"
    process = start_up(up_env, log, cli=[str(installed / "bin" / "cronium")], cwd=project)
    try:
        assert "events:      events" in log.read_text(), log.read_text()
        wait_for_dashboard(dashboard_port)
        with chromium() as driver:
            for path, title in PAGES.items():
                open_page(driver, f"http://127.0.0.1:{dashboard_port}/{path}", title)
                wait(lambda: drawn(driver), what=f"{title} drawn")
                driver.save_screenshot(str(SHOTS / f"wheel-{path or 'overview'}.png"))
                text = body(driver)
                assert "Traceback" not in driver.page_source and "Page not found" not in text
            # The five examples `init` wrote, applied by `up` from ./events.
            open_page(driver, f"http://127.0.0.1:{dashboard_port}/events", "Events")
            wait(lambda: "5 events" in body(driver), what="the applied examples counted")
            open_page(driver, f"http://127.0.0.1:{dashboard_port}/event?name=hello", "hello")
            wait(lambda: drawn(driver), what="hello's page drawn")
            driver.get(f"http://127.0.0.1:{dashboard_port}/run")  # no run chosen yet
            wait(lambda: "paste its id" in body(driver), what="the run page drawn")
            assert "Traceback" not in driver.page_source
    finally:
        stop_up(process, port, log)
