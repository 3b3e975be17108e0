"""The audit trail of a scripted sequence of actions, read back with `cronium audit --json`
and compared entry by entry: the CLI (users, tokens, apply, trigger, pause, resume,
variables, delete) and the HTTP service (webhooks accepted and refused), on the test
server's SQLite database, and the front door on PostgreSQL."""

from __future__ import annotations

import getpass
import json
import os
import uuid
from datetime import datetime, timezone

import httpx
from prefect.settings import PREFECT_API_URL, temporary_settings

from tests.cli import cronium
from tests.integration.front_door import DATABASE_ENV, FrontDoor, cli, save_secret

SECRET_VALUE = "aud-" + uuid.uuid4().hex
HOOK_SECRET = "hook-" + uuid.uuid4().hex
EVENT = """
name: aud-ev
type: bash
status: active
pool: aud-nobody
script: "true"
webhook: {secret: aud-hook}
"""


def ok(done) -> str:
    assert done.returncode == 0, done.stderr + done.stdout
    return done.stdout


def test_a_scripted_sequence_reads_back_entry_by_entry(prefect_api, tmp_path):
    started = datetime.now(timezone.utc).isoformat()
    save_secret("aud-hook", HOOK_SECRET)
    (tmp_path / "aud.yaml").write_text(EVENT)
    ok(cli("user", "add", "aud-admin", "--role", "admin", stdin="aud-admin-password\n"))
    ok(cli("user", "add", "aud-ops", "--role", "operator", stdin="aud-ops-password\n"))
    token = json.loads(
        ok(cli("token", "create", "--scope", "run:aud-*", "--user", "aud-ops", "--json"))
    )
    ok(cli("apply", str(tmp_path / "aud.yaml")))
    door = FrontDoor(tmp_path)
    try:
        ok(cli("trigger", "aud-ev"))
        ok(cli("pause", "aud-ev"))
        bearer = {"Authorization": f"Bearer {token['token']}"}
        assert door.post("aud-ev", b"", **bearer).status_code == 409
        ok(cli("resume", "aud-ev"))
        accepted = door.post("aud-ev", b"", **bearer)
        assert accepted.status_code == 202
        assert door.post("aud-ev", b"", Authorization="Bearer wrong").status_code == 401
        assert door.post("aud-ev", b"", Authorization=f"Bearer {HOOK_SECRET}").status_code == 202
    finally:
        door.stop()
    ok(cli("var", "set", "AUD_KEY", "--secret", stdin=SECRET_VALUE + "\n"))
    ok(cli("var", "delete", "AUD_KEY"))
    assert cli("var", "delete", "AUD_KEY").returncode == 1  # gone already: refused
    ok(cli("token", "revoke", token["id"]))
    ok(cli("user", "role", "aud-ops", "viewer"))
    assert cli("user", "delete", "aud-admin").returncode == 2  # the last admin
    ok(cli("user", "delete", "aud-ops"))
    ok(cli("delete", "aud-ev"))

    shown = ok(cli("audit", "--since", started, "--json"))
    entries = json.loads(shown)
    me = getpass.getuser()
    got = [(e["actor_kind"], e["actor"], e["action"], e["target"], e["outcome"]) for e in entries]
    token_actor = f"token {token['id']} of aud-ops"
    assert got == [
        ("cli", me, "user.add", "aud-admin", "ok"),
        ("cli", me, "user.add", "aud-ops", "ok"),
        ("cli", me, "token.create", token["id"], "ok"),
        ("cli", me, "apply", str(tmp_path / "aud.yaml"), "ok"),
        ("cli", me, "trigger", "aud-ev", "ok"),
        ("cli", me, "pause", "aud-ev", "ok"),
        ("token", token_actor, "trigger", "aud-ev", "refused"),
        ("cli", me, "resume", "aud-ev", "ok"),
        ("token", token_actor, "trigger", "aud-ev", "ok"),
        ("webhook", "aud-ev", "trigger", "aud-ev", "refused"),
        ("webhook", "aud-ev", "trigger", "aud-ev", "ok"),
        ("cli", me, "variable.set", "AUD_KEY", "ok"),
        ("cli", me, "variable.delete", "AUD_KEY", "ok"),
        ("cli", me, "variable.delete", "AUD_KEY", "refused"),
        ("cli", me, "token.revoke", token["id"], "ok"),
        ("cli", me, "user.role", "aud-ops", "ok"),
        ("cli", me, "user.delete", "aud-admin", "refused"),
        ("cli", me, "user.delete", "aud-ops", "ok"),
        ("cli", me, "delete", "aud-ev", "ok"),
    ]
    details = [e["detail"] for e in entries]
    assert details[1] == {"role": "operator"}
    assert details[3]["created"] == ["aud-ev"]
    assert details[6]["status"] == 409 and details[9]["status"] == 401
    assert details[8]["run_id"] == accepted.json()["run_id"]
    assert details[11] == {"owner": None, "secret": True}  # the key, never the value
    assert "last admin" in details[16]["error"]
    assert all(e["source"] in ("cli", "127.0.0.1") for e in entries)
    assert SECRET_VALUE not in shown and HOOK_SECRET not in shown
    # Filters.
    by_user = json.loads(ok(cli("audit", "--since", started, "--user", "aud-ops", "--json")))
    assert [e["actor"] for e in by_user] == [token_actor, token_actor]
    by_event = json.loads(ok(cli("audit", "--since", started, "--event", "aud-ev", "--json")))
    assert len(by_event) == 8
    assert cli("audit", "--since", "yesterday-ish").returncode == 2


def test_the_front_door_on_postgresql(postgres_api, postgres_cluster, tmp_path):
    started = datetime.now(timezone.utc).isoformat()
    database = f"postgresql+asyncpg://postgres@127.0.0.1:{postgres_cluster.port}/prefect"
    env = {**os.environ, "PREFECT_API_URL": postgres_api, DATABASE_ENV: database}
    with temporary_settings({PREFECT_API_URL: postgres_api}):
        save_secret("aud-hook", HOOK_SECRET)
    (tmp_path / "aud.yaml").write_text(EVENT)
    ok(cronium("apply", str(tmp_path / "aud.yaml"), env=env))
    ok(cronium("user", "add", "pg-admin", "--role", "admin", env=env, stdin="pg-admin-pass\n"))
    token = json.loads(
        ok(cronium("token", "create", "--scope", "read", "--user", "pg-admin", "--json", env=env))
    )
    door = FrontDoor(tmp_path, env)
    try:
        accepted = door.post(
            "aud-ev",
            b'{"on": "pg"}',
            Authorization=f"Bearer {HOOK_SECRET}",
            **{"Content-Type": "application/json"},
        )
        assert accepted.status_code == 202, accepted.text
        status = httpx.get(
            accepted.json()["status_url"], headers={"Authorization": f"Bearer {token['token']}"}
        )
        assert status.status_code == 200 and status.json()["event"] == "aud-ev"
    finally:
        door.stop()
    entries = json.loads(ok(cronium("audit", "--since", started, "--json", env=env)))
    assert [(e["action"], e["target"], e["outcome"]) for e in entries] == [
        ("apply", str(tmp_path / "aud.yaml"), "ok"),
        ("user.add", "pg-admin", "ok"),
        ("token.create", token["id"], "ok"),
        ("trigger", "aud-ev", "ok"),
    ]
