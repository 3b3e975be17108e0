"""A server without the SFTP subsystem (hardened OpenSSH, dropbear, BusyBox systems): runs
move their files over exec channels instead, chosen by themselves and said once per
server, with every helper in three languages, under bash and under dash as the login
shell. `cronium server test` says which way a server takes, and what else it offers."""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import uuid
from pathlib import Path

import pytest

from cronium_prefect import parse_text
from cronium_prefect.blocks.variable_store import get_variable_store
from tests.cli import cronium
from tests.integration.helpers import logs_of, record_json, runs_at_once
from tests.processes import settles
from tests.sshd import USER, Sshd, login_shell, run_directories

SAID = "offers no SFTP"

SCRIPTS = {
    "bash": (
        'n=$(cronium_input | sed "s/[^0-9]//g")\n'
        'echo "bash line $n"\n'
        'cronium_setVariable {key} "$n"\n'
        'cronium_output "{{\\"n\\": $n, \\"lang\\": \\"bash\\"}}"\n'
        "cronium_setCondition true\n"
    ),
    "python": (
        "import cronium\n"
        "n = cronium.input()['n']\n"
        "print(f'python line {{n}}')\n"
        "cronium.setVariable('{key}', n)\n"
        "cronium.output({{'n': n, 'lang': 'python'}})\n"
        "cronium.setCondition(True)\n"
    ),
    "node": (
        'const cronium = require("cronium");\n'
        "(async () => {{\n"
        "  const n = (await cronium.input()).n;\n"
        "  console.log(`node line ${{n}}`);\n"
        "  await cronium.setVariable('{key}', n);\n"
        "  await cronium.output({{n: n, lang: 'node'}});\n"
        "  await cronium.setCondition(true);\n"
        "}})();\n"
    ),
}


@pytest.fixture(scope="module")
def bare_server(ssh_server, tmp_path_factory):
    """An sshd of this module's own (a port no other run has met): no SFTP."""
    server = Sshd.create(tmp_path_factory.mktemp("sshd-bare"), sftp=False)
    ssh_server("bare", target=server)
    yield server
    server.remove()


def _events(tag: str) -> list:
    events = []
    for language, template in SCRIPTS.items():
        key = f"BARE_{tag}_{language}".upper()
        definition = {
            "name": f"bare-{tag}-{language}",
            "type": language,
            "run_location": "remote",
            "servers": ["bare"],
            "variables": [key],
            "script": template.format(key=key),
        }
        (event,) = parse_text(json.dumps(definition))
        events.append(event)
    return events


def _run_all(tag: str) -> list[tuple[dict, list[str]]]:
    events = _events(tag)
    states = asyncio.run(runs_at_once([(e, {"n": i + 1}) for i, e in enumerate(events)]))
    done = []
    for event, state, n in zip(events, states, (1, 2, 3), strict=True):
        record = record_json(state.result(raise_on_failure=False))
        assert record["status"] == "SUCCESS", (event.name, record)
        assert record["output"] == {"n": n, "lang": event.type.value}, record
        assert record["condition"] is True, record
        assert get_variable_store().get(event.variables[0]).value in (n, str(n))
        lines = logs_of(str(state.state_details.flow_run_id))
        assert any(f"{event.type.value} line {n}" in line for line in lines), lines
        done.append((record, lines))
    return done


@pytest.mark.timeout(300)
def test_runs_on_a_server_without_sftp_under_bash_and_dash(stack, bare_server):
    first = _run_all(f"b{uuid.uuid4().hex[:4]}")
    # The first runs to meet the server found out, and exactly one said so.
    said = [lines for _, lines in first if any(SAID in line for line in lines)]
    assert len(said) == 1, [lines for _, lines in first]
    with login_shell("/bin/sh"):  # dash on Debian
        second = _run_all(f"d{uuid.uuid4().hex[:4]}")
        facts = cronium("server", "test", "bare", "--json")
    assert not any(SAID in line for _, lines in second for line in lines)  # said once
    assert settles(lambda: run_directories() == [], 10), run_directories()
    assert facts.returncode == 0, facts.stderr
    shown = json.loads(facts.stdout)
    assert shown["sftp"] is False and shown["shell"] == "/bin/sh", shown
    assert shown["python3"].startswith("Python 3") and shown["node"].startswith("v"), shown
    assert shown["free_disk_bytes"] > 0 and shown["cpus"] >= 1, shown


def test_server_test_says_a_stock_server_offers_sftp(ssh_server, prefect_api):
    ssh_server("stock")
    done = cronium("server", "test", "stock")
    assert done.returncode == 0, done.stderr
    shown = " ".join(done.stdout.split())  # Rich wraps long lines
    assert "login shell /bin/bash" in shown and "free for runs; SFTP" in shown, shown
    shown = json.loads(cronium("server", "test", "stock", "--json").stdout)
    assert shown["sftp"] is True and shown["shell"] == "/bin/bash"


def test_a_chatty_login_and_an_unreadable_output_on_a_server_without_sftp(stack, bare_server):
    """A login script that prints (here ~/.ssh/rc, as a .bashrc may), even a line shaped
    like a frame, is skipped before our answer; an output the script made unreadable is
    a clear error."""
    account = pwd.getpwnam(USER)
    rc = Path(account.pw_dir) / ".ssh" / "rc"
    rc.write_text("echo 'hello from ~/.ssh/rc'\necho 'F 5 out/../../escape.json'\n")
    os.chown(rc, account.pw_uid, account.pw_gid)
    try:
        (fine,) = parse_text(
            "name: bare-chatty\ntype: bash\nrun_location: remote\nservers: [bare]\n"
            "variables: []\nscript: cronium_output 7\n"
        )
        (locked,) = parse_text(
            "name: bare-locked\ntype: bash\nrun_location: remote\nservers: [bare]\n"
            "variables: []\nscript: |\n  cronium_output 8\n"
            '  chmod 000 "$CRONIUM_DIR"/out/output.*\n'
        )
        states = asyncio.run(runs_at_once([(fine, None), (locked, None)]))
        ok, refused = (record_json(s.result(raise_on_failure=False)) for s in states)
    finally:
        rc.unlink()
    assert ok["status"] == "SUCCESS" and ok["output"] == 7, ok
    assert refused["status"] == "FAILURE", refused
    assert "out/output.txt is not readable" in refused["error"], refused
    assert not (Path(account.pw_dir) / ".cronium" / "escape.json").exists()
    assert settles(lambda: run_directories() == [], 10), run_directories()
