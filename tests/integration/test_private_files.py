"""Cronium's home and Prefect's result files are kept from other users: the directories
are made 0700, and tightened when they exist with wider modes."""

from __future__ import annotations

import json
import os
import stat

import pytest

from .test_apply import cronium


@pytest.mark.parametrize("mode", [0o755, 0o777, 0o750], ids=oct)
def test_a_run_tightens_the_home_and_the_result_files(prefect_api, docker_client, tmp_path, mode):
    home, results = tmp_path / "home", tmp_path / "results"
    for folder in (home, results):
        folder.mkdir()
        folder.chmod(mode)
    (tmp_path / "e.yaml").write_text("name: private\ntype: bash\nscript: cronium_output 1\n")
    env = {
        **os.environ,
        "CRONIUM_HOME": str(home),
        "PREFECT_RESULTS_LOCAL_STORAGE_PATH": str(results),
    }
    done = cronium("run", str(tmp_path / "e.yaml"), "--json", env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["output"] == 1
    for folder in (home, results):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    assert any(path.is_file() for path in results.iterdir())  # the run's result is in there


def test_a_missing_home_is_made_owner_only(prefect_api, docker_client, tmp_path):
    home = tmp_path / "fresh" / "home"
    (tmp_path / "e.yaml").write_text("name: private-new\ntype: bash\nscript: 'true'\n")
    env = {**os.environ, "CRONIUM_HOME": str(home)}
    assert cronium("run", str(tmp_path / "e.yaml"), env=env).returncode == 0
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
