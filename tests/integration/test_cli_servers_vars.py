"""`cronium server ...` and `cronium var ...` as a user types them."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.cli import cronium
from tests.sshd import PASSWORD, USER


def test_server_add_refuses_an_unknown_key_then_trusts_records_and_works(
    sshd, prefect_api, tmp_path
):
    key = tmp_path / "id"
    key.write_text(sshd.client_key)
    base = [
        "server",
        "add",
        "cli-web",
        "--host",
        "127.0.0.1",
        "--port",
        str(sshd.port),
        "--user",
        USER,
        "--key-file",
        str(key),
    ]
    refused = cronium(*base)
    assert refused.returncode == 1
    assert "unknown host key ssh-ed25519 SHA256:" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert "cli-web" not in cronium("server", "list", "--json").stdout

    trusted = cronium(*base, "--trust-host-key")
    assert trusted.returncode == 0, trusted.stderr
    listed = {s["name"]: s for s in json.loads(cronium("server", "list", "--json").stdout)}
    expected = subprocess.run(
        ["ssh-keygen", "-lf", str(sshd.directory / "host_key.pub")], capture_output=True, text=True
    ).stdout.split()[1]
    assert listed["cli-web"]["host_key"] == expected

    facts = cronium("server", "test", "cli-web", "--json")
    assert facts.returncode == 0, facts.stderr
    facts = json.loads(facts.stdout)
    assert facts["cpus"] >= 1 and facts["memory_bytes"] > 0 and facts["uptime_s"] > 0
    assert facts["kernel"].startswith("Linux") and facts["os"]


def test_server_add_with_password_from_stdin_and_a_wrong_password(sshd, prefect_api):
    base = [
        "server",
        "add",
        "cli-pw",
        "--host",
        "127.0.0.1",
        "--port",
        str(sshd.port),
        "--user",
        USER,
        "--password-stdin",
        "--host-key",
        sshd.host_key_line,
    ]
    wrong = cronium(*base, stdin="not-the-password\n")
    assert wrong.returncode == 1 and "authentication failed" in wrong.stderr
    right = cronium(*base, stdin=PASSWORD + "\n")
    assert right.returncode == 0, right.stderr
    assert PASSWORD not in cronium("server", "list", "--json").stdout


def test_server_usage_errors_exit_2(prefect_api):
    assert cronium("server", "test", "nope").returncode == 2
    bad = cronium("server", "add", "Bad_Name", "--host", "h", "--user", "u", "--key-file", "x")
    assert bad.returncode == 2 and "server name 'Bad_Name'" in bad.stderr


def test_var_set_get_list_delete_and_secrets_masked(prefect_api):
    assert cronium("var", "set", "CLI_PLAIN", '{"a": [1, 2]}').returncode == 0
    assert cronium("var", "set", "CLI_TEXT", "just words").returncode == 0
    assert cronium("var", "set", "CLI_TOKEN", "tok-91ab", "--secret").returncode == 0
    assert cronium("var", "set", "CLI_TEXT", "mine", "--owner", "alice").returncode == 0

    assert json.loads(cronium("var", "get", "CLI_PLAIN").stdout) == {"a": [1, 2]}
    assert json.loads(cronium("var", "get", "CLI_TEXT").stdout) == "just words"
    assert json.loads(cronium("var", "get", "CLI_TEXT", "--owner", "alice").stdout) == "mine"
    assert json.loads(cronium("var", "get", "CLI_TOKEN").stdout) == "***"
    assert json.loads(cronium("var", "get", "CLI_TOKEN", "--reveal").stdout) == "tok-91ab"
    listing = cronium("var", "list", "--json").stdout
    assert "tok-91ab" not in listing
    rows = {(r["key"], r["owner"]): r for r in json.loads(listing)}
    assert rows[("CLI_TOKEN", None)]["value"] == "***" and rows[("CLI_TOKEN", None)]["secret"]

    assert cronium("var", "delete", "CLI_PLAIN").returncode == 0
    assert cronium("var", "get", "CLI_PLAIN").returncode == 1
    assert cronium("var", "delete", "CLI_PLAIN").returncode == 1


def test_var_rejects_bad_keys_and_huge_values(prefect_api):
    bad = cronium("var", "set", "lower", "1")
    assert bad.returncode == 2 and "must match [A-Z_][A-Z0-9_]*" in bad.stderr
    reserved = cronium("var", "set", "PREFECT_X", "1")
    assert reserved.returncode == 2 and "reserved prefix" in reserved.stderr
    huge = cronium("var", "set", "HUGE", "x" * 20000)
    assert huge.returncode == 2 and "over the limit of 10000" in huge.stderr


@pytest.mark.parametrize(
    ("args", "stdin", "stored"),
    [
        (["--secret"], "tok-from-pipe\n", "tok-from-pipe"),  # `echo tok | cronium var set K`
        (["-", "--secret"], "tok-dash", "tok-dash"),  # no final newline (printf)
        (["--secret"], "line one\nline two\n", "line one\nline two"),  # a PEM-like value
        ([], '{"json": true}\n', {"json": True}),  # JSON when it parses, as ever
    ],
    ids=["piped", "dash", "multi-line", "json"],
)
def test_var_set_reads_the_value_from_stdin(prefect_api, args, stdin, stored):
    done = cronium("var", "set", "CLI_STDIN", *args, stdin=stdin)
    assert done.returncode == 0, done.stderr
    assert json.loads(cronium("var", "get", "CLI_STDIN", "--reveal").stdout) == stored
    assert cronium("var", "delete", "CLI_STDIN").returncode == 0


def test_var_set_from_stdin_refuses_nothing_and_too_much(prefect_api):
    empty = cronium("var", "set", "CLI_STDIN_X", "--secret", stdin="")
    assert empty.returncode == 2 and "no value" in empty.stderr
    huge = cronium("var", "set", "CLI_STDIN_X", "--secret", stdin="x" * 20_000)
    assert huge.returncode == 2 and "over 10000 characters" in huge.stderr
    assert cronium("var", "get", "CLI_STDIN_X").returncode == 1
