"""The host side of the helper protocol refuses what a script must not hand back."""

import json
import os

import pytest

from cronium_prefect.errors import HelperProtocolError
from cronium_prefect.runtime_helpers.host import Staging


@pytest.fixture
def staging(tmp_path):
    return Staging.create(
        tmp_path / "runs", "bash", "echo hi", {"in": 1}, {"name": "e"}, {"PLAIN": "text", "NUM": 3}
    )


def test_layout_has_helpers_inputs_and_text_variables_for_bash(staging):
    root = staging.root
    assert {p.name for p in (root / "lib").iterdir()} == {"cronium.py", "cronium.js", "cronium.sh"}
    assert json.loads((root / "in" / "input.json").read_text()) == {"in": 1}
    assert (root / "in" / "vars" / "PLAIN").read_text() == "text"
    assert (root / "in" / "vars" / "NUM").read_text() == "3"
    assert oct(os.stat(root.parent).st_mode & 0o777) == "0o700"


def test_bash_text_values_are_json_when_they_parse(staging):
    (staging.root / "out" / "output.txt").write_text('{"a": [1]}')
    (staging.root / "out" / "vars" / "A.txt").write_text("just words")
    (staging.root / "out" / "condition").write_text("true")
    collected = staging.collect(1024)
    assert collected.output == {"a": [1]} and collected.has_output
    assert collected.variables == {"A": "just words"} and collected.condition is True


def test_output_over_the_limit_fails_clearly(staging):
    (staging.root / "out" / "output.txt").write_text("x" * 2000)
    assert "2000 bytes, over the limit of 1024" in staging.collect(1024).error


def test_output_that_is_not_json_fails_clearly(staging):
    (staging.root / "out" / "output.json").write_text("{not json")
    assert "output: not valid JSON" in staging.collect(1024).error


def test_a_planted_symlink_is_never_followed(staging, tmp_path):
    secret = tmp_path / "host-secret"
    secret.write_text('"host data"')
    os.symlink(secret, staging.root / "out" / "output.json")
    collected = staging.collect(1024)
    assert "output: output.json is a link; links are never followed" in collected.error
    assert collected.output is None


@pytest.mark.parametrize(
    "text",
    ["[" * 65 + "]" * 65, '{"a":' * 500 + "1" + "}" * 500, "[" * 5000 + "]" * 5000, "[" * 10**6],
    ids=["65 arrays", "500 objects", "5,000 arrays", "a million brackets"],
)
def test_deeply_nested_output_is_refused_and_the_variable_writes_kept(staging, text):
    (staging.root / "out" / "output.json").write_text(text)
    (staging.root / "out" / "vars" / "KEPT.json").write_text("[[1]]")
    (staging.root / "out" / "condition").write_text("true")
    collected = staging.collect(10**7)
    assert "over the limit of 64" in collected.error and "output nests" in collected.error
    assert collected.variables == {"KEPT": [[1]]} and collected.condition is True


def test_a_deeply_nested_variable_write_is_refused_and_none_kept(staging):
    (staging.root / "out" / "vars" / "DEEP.json").write_text("[" * 100 + "]" * 100)
    (staging.root / "out" / "vars" / "OTHER.json").write_text("1")
    with pytest.raises(HelperProtocolError, match="variable DEEP nests 100 levels deep"):
        staging.collect(1024)


def test_a_variable_file_with_a_bad_key_is_refused(staging):
    (staging.root / "out" / "vars" / "lower.json").write_text("1")
    with pytest.raises(HelperProtocolError, match=r"out/vars/lower.json: variable key 'lower'"):
        staging.collect(1024)


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("PREFECT_X.txt", "1", "reserved prefix"),
        (f"{'A' * 101}.json", "1", "longer than 100"),
        ("NAN.txt", "NaN", "not JSON-serialisable"),
        ("WIDE.json", '"' + "é" * 3000 + '"', None),  # 3000 characters: within the limit
    ],
)
def test_variable_writes_follow_the_stores_rules(staging, name, text, message):
    (staging.root / "out" / "vars" / name).write_text(text)
    if message is None:
        assert len(staging.collect(1024).variables["WIDE"]) == 3000
    else:
        with pytest.raises(HelperProtocolError, match=message):
            staging.collect(1024)


def test_run_directories_of_dead_processes_are_reaped_and_live_ones_kept(tmp_path):
    import subprocess
    import sys

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    parent = tmp_path / "runs"
    mine = Staging.create(parent, "bash", "true", None, {}, {})
    (parent / f"run-{dead.pid}-1-abcd").mkdir()
    assert Staging.reap_orphans(parent) == 1
    assert [p.name for p in parent.iterdir()] == [mine.root.name]


def test_remove_tree_takes_a_tree_thousands_deep_and_never_follows_links(tmp_path):
    from cronium_prefect.runtime_helpers.host import remove_tree

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    top = tmp_path / "run"
    top.mkdir()
    # 3,000 deep: past the recursion limit, and past PATH_MAX as one path, so it is built
    # level by level from inside, as a script would.
    fd = os.open(top, os.O_RDONLY)
    try:
        for _ in range(3000):
            os.mkdir("d", dir_fd=fd)
            child = os.open("d", os.O_RDONLY, dir_fd=fd)
            with open(os.open("f", os.O_WRONLY | os.O_CREAT, dir_fd=child), "w") as f:
                f.write("x")
            os.close(fd)
            fd = child
        os.symlink(outside, "link", dir_fd=fd)
    finally:
        os.close(fd)
    (top / "empty").mkdir()
    remove_tree(top)
    assert not top.exists()
    assert (outside / "keep.txt").read_text() == "keep"
