"""A `.env` in the working directory (or the environment) cannot quietly weaken isolation:
a value no event could choose is refused (exit 2, naming the setting, the value and where
it came from), and a value that loosens a guard is named on stderr before anything runs."""

from __future__ import annotations

import os

import pytest

from cronium_prefect.settings import CroniumSettings, loosened
from tests.cli import cronium

REFUSED = [
    ("CRONIUM_DEFAULT_NETWORK", "host"),
    ("CRONIUM_DEFAULT_NETWORK", "container:other"),
    ("CRONIUM_DEFAULT_NETWORK", "my-lan"),
    ("CRONIUM_DOCKER_USER", "0; rm -rf /"),
    ("CRONIUM_DOCKER_USER", "--privileged"),
    ("CRONIUM_TMPFS_SIZE", "lots"),
    ("CRONIUM_DEFAULT_MEMORY", "1g; --privileged"),
]
ROOT = [
    ("CRONIUM_DOCKER_USER", "0", "scripts run as root"),
    ("CRONIUM_DOCKER_USER", "root:root", "scripts run as root"),
    ("CRONIUM_DOCKER_USER", "0000", "scripts run as root"),
    ("CRONIUM_DOCKER_USER", "65534:0", "scripts run in the root group"),
    ("CRONIUM_DOCKER_USER", "nobody:root", "scripts run in the root group"),
]
LOOSENED = [
    ("CRONIUM_OUTPUT_LIMIT", "999999999", "above the default of 1048576"),
    ("CRONIUM_TEMPLATE_MEMORY_MB", "65536", "above the default of 256"),
    ("CRONIUM_DEFAULT_PIDS", "100000", "above the default of 256"),
    ("CRONIUM_DEFAULT_MEMORY", "64g", "above the default of 512m"),
    ("CRONIUM_CHAIN_LIMIT", "1000", "above the default of 10"),
    ("CRONIUM_IMAGE_PYTHON", "someone/python:latest", "go into this image"),
    ("CRONIUM_DOCKER_HOST_BLOCK", "far-away", "the Docker host this block names"),
]


def _env_without_cronium() -> dict[str, str]:
    # The tests' own CRONIUM_* settings would otherwise win over the .env file.
    return {k: v for k, v in os.environ.items() if not k.startswith("CRONIUM_")}


# Each refused value from each source, each through one of the commands that run scripts,
# in turn: every command meets values of every kind and both sources (a process per case,
# not three: the family is the values; the commands share one settings check).
COMMANDS = (("run", "no-such-file.yaml"), ("worker",), ("up",))
CASES = [
    (name, value, where, COMMANDS[i % len(COMMANDS)])
    for i, ((name, value), where) in enumerate(
        (refused, where) for refused in REFUSED for where in (".env", "environment")
    )
]


@pytest.mark.parametrize(
    "name, value, where, command", CASES, ids=[f"{n}={v}-{w}-{c[0]}" for n, v, w, c in CASES]
)
def test_a_value_no_event_could_choose_is_refused(
    prefect_api, tmp_path, name, value, where, command
):
    env = _env_without_cronium()
    if where == ".env":
        (tmp_path / ".env").write_text(f"{name}='{value}'\n")
        source = f"from {tmp_path / '.env'}"
    else:
        env[name] = value
        source = "from the environment"
    done = cronium(*command, cwd=tmp_path, env=env, timeout=60)
    assert done.returncode == 2, (command, done.stdout, done.stderr)
    shown = " ".join(done.stderr.split())  # Rich wraps long lines
    assert f"{name}={value!r} ({source})" in shown, (command, shown)
    assert "Traceback" not in done.stderr


def test_each_loosening_value_is_named_with_its_source_before_anything_runs(prefect_api, tmp_path):
    (tmp_path / ".env").write_text("".join(f"{n}={v}\n" for n, v, _ in LOOSENED))
    for name, value, words in ROOT:
        env = {**_env_without_cronium(), name: value}
        done = cronium("run", "no-such-file.yaml", cwd=tmp_path, env=env, timeout=60)
        shown = " ".join(done.stderr.split())
        assert f"warning: {name}={value} (from the environment): {words}" in shown, shown
        for other, other_value, other_words in LOOSENED:
            assert f"warning: {other}={other_value} (from {tmp_path / '.env'})" in shown
            assert other_words in shown
        # Named first, then the command went on (and found no such file).
        assert shown.index("warning:") < shown.index("error:") and done.returncode == 2


def test_defaults_loosen_nothing(monkeypatch):
    for name in [k for k in os.environ if k.startswith("CRONIUM_")]:
        monkeypatch.delenv(name)  # the tests' own settings are not the defaults
    assert loosened(CroniumSettings(_env_file=None)) == []
