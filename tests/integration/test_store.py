"""Cronium's tables (users, tokens, audit) on both databases Prefect runs on: a SQLite file
and PostgreSQL, migrated by Alembic beside Prefect's own tables."""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
import time
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import inspect

from cronium_prefect.access import Actor, AuditAction, Permission, Role
from cronium_prefect.service import audit
from cronium_prefect.service.store import Store
from cronium_prefect.service.tables import VERSION_TABLE
from cronium_prefect.service.tokens import (
    TokenError,
    create_token,
    list_tokens,
    revoke_token,
    token_actor,
)
from cronium_prefect.service.users import (
    UserError,
    add_user,
    any_user,
    authenticate,
    delete_user,
    set_role,
)

_numbers = itertools.count()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'prefect.db'}"
    cluster = request.getfixturevalue("postgres_cluster")
    return cluster.create_database(f"store_{next(_numbers)}_{int(time.time() * 1000) % 10**6}")


def run(coroutine_function, url):
    async def go():
        store = Store(url)
        try:
            return await coroutine_function(store)
        finally:
            await store.close()

    return asyncio.run(go())


def test_migrations_make_cronium_tables_beside_prefects_and_run_once(store_url, tmp_path):
    if store_url.startswith("sqlite"):  # a table of "Prefect's" that must be left alone
        with sqlite3.connect(store_url.split("///", 1)[1]) as db:
            db.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)")
            db.execute("INSERT INTO alembic_version VALUES ('prefects-own')")

    async def migrate_twice_at_once(store):
        others = [Store(store_url) for _ in range(3)]
        await asyncio.gather(store.migrate(), *(o.migrate() for o in others))
        for other in others:
            await other.close()
        async with store.engine.connect() as connection:
            return await connection.run_sync(lambda c: inspect(c).get_table_names())

    tables = run(migrate_twice_at_once, store_url)
    assert {"cronium_users", "cronium_tokens", "cronium_audit", VERSION_TABLE} <= set(tables)
    assert all(t.startswith("cronium_") or t == "alembic_version" for t in tables), tables
    if store_url.startswith("sqlite"):
        with sqlite3.connect(store_url.split("///", 1)[1]) as db:
            assert db.execute("SELECT version_num FROM alembic_version").fetchall() == [
                ("prefects-own",)
            ]


def test_users_passwords_roles_and_the_last_admin(store_url):
    async def scenario(store):
        assert not await any_user(store)
        await add_user(store, "alice", Role.admin, "correct horse")
        await add_user(store, "bob", Role.viewer, "battery staple")
        assert await any_user(store)
        with pytest.raises(UserError, match="exists"):
            await add_user(store, "bob", Role.admin, "another one")
        for bad_name in ["", "-x", "a b", "x" * 65, "ann\n", "é"]:
            with pytest.raises(UserError, match="user name"):
                await add_user(store, bad_name, Role.viewer, "long enough")
        for bad_password in ["short", "x" * 1025]:
            with pytest.raises(UserError, match="password"):
                await add_user(store, "carol", Role.viewer, bad_password)
        signed = await authenticate(store, "alice", "correct horse")
        assert signed is not None and signed.role == Role.admin
        for name, password in [
            ("alice", "wrong"),
            ("alice", "correct horse "),
            ("nobody", "correct horse"),
            ("alice", ""),
            ("alice", "x" * 5000),
        ]:
            assert await authenticate(store, name, password) is None
        with pytest.raises(UserError, match="last admin"):
            await delete_user(store, "alice")
        with pytest.raises(UserError, match="last admin"):
            await set_role(store, "alice", Role.operator)
        await set_role(store, "bob", Role.admin)
        await set_role(store, "alice", Role.operator)  # now allowed: bob is an admin
        await delete_user(store, "alice")
        assert await authenticate(store, "alice", "correct horse") is None

    run(scenario, store_url)


def test_tokens_scopes_expiry_revocation_and_a_deleted_user(store_url):
    async def scenario(store):
        await add_user(store, "ops", Role.operator, "operator pw")
        await add_user(store, "viewer", Role.viewer, "viewer pw")
        await add_user(store, "admin", Role.admin, "admin pw1")
        info, text = await create_token(store, "ops", ["run:deploy-*"], timedelta(days=1))
        actor = await token_actor(store, text, "10.0.0.1")
        assert actor is not None and actor.kind == "token" and info.id in actor.name
        assert actor.may(Permission.run, "deploy-web")
        assert not actor.may(Permission.run, "backup")
        assert actor.may(Permission.read, "deploy-web")  # its own events' runs
        assert not actor.may(Permission.read, "backup")
        assert not actor.may(Permission.pause, "deploy-web")  # scopes never add to a role
        # A viewer's token with a run scope still cannot run: the role is checked too.
        _, viewer_text = await create_token(store, "viewer", ["run:*"], None)
        assert not (await token_actor(store, viewer_text, "x")).may(Permission.run, "any")
        # Wrong secrets, wrong forms, unknown ids: none act.
        wrong = text[:-1] + ("A" if text[-1] != "A" else "B")
        for presented in [wrong, text + "x", text.upper(), "crn_", "", "Bearer " + text]:
            assert await token_actor(store, presented, "x") is None, presented
        # Expiry.
        _, short = await create_token(store, "ops", ["read"], timedelta(seconds=3))
        assert await token_actor(store, short, "x") is not None
        await asyncio.sleep(3.5)
        assert await token_actor(store, short, "x") is None
        # Revocation, and only the owner's when a user is named.
        with pytest.raises(TokenError):
            await revoke_token(store, info.id, user="viewer")
        await revoke_token(store, info.id)
        assert await token_actor(store, text, "x") is None
        states = {t.id: t.state(datetime.now(timezone.utc)) for t in await list_tokens(store)}
        assert states[info.id] == "revoked" and list(states.values()).count("expired") == 1
        # Bad requests.
        for scopes, lifetime in [
            ([], None),
            (["write"], None),
            (["run:"], None),
            (["run:A B"], None),
            (["read"], timedelta(0)),
            (["read"], timedelta(days=4000)),
            ([f"run:e{i}" for i in range(21)], None),
        ]:
            with pytest.raises(TokenError):
                await create_token(store, "ops", scopes, lifetime)
        with pytest.raises(TokenError, match="no user"):
            await create_token(store, "ghost", ["read"], None)
        # A deleted user's tokens go with them.
        _, ops_read = await create_token(store, "ops", ["read"], None)
        await delete_user(store, "ops")
        assert await token_actor(store, ops_read, "x") is None

    run(scenario, store_url)


def test_audit_keeps_names_caps_details_and_reads_by_user_event_and_time(store_url):
    alice = Actor("user", "alice", "10.1.1.1", Role.admin)
    under = Actor("user", "a_b", "10.1.1.2", Role.admin)  # `_` is a LIKE wildcard
    token = Actor("token", "token abc of alice", "10.1.1.3", Role.operator, ("read",))

    hook = Actor("webhook", "alice", "10.1.1.4", Role.operator)  # a hook named alice
    visitor = Actor("visitor", "alice", "10.1.1.5", Role.viewer)  # a failed sign-in
    big_alice = Actor("token", "token xyz of Alice", "10.1.1.6", Role.viewer, ("read",))

    async def scenario(store):
        from sqlalchemy import insert

        from cronium_prefect.service.tables import AuditEntry

        async with store.session() as session:  # an entry from two years ago
            await session.execute(
                insert(AuditEntry).values(
                    at=datetime.now(timezone.utc) - timedelta(days=730),
                    actor_kind="user",
                    actor="alice",
                    source="x",
                    action="pause",
                    target="old",
                    outcome="ok",
                    detail={},
                )
            )
        pruned = await audit.prune(store, 365)
        await audit.record(store, alice, AuditAction.pause, "nightly")
        await audit.record(store, under, AuditAction.resume, "nightly")
        await audit.record(store, token, AuditAction.trigger, "backup", audit.REFUSED, status=401)
        await audit.record(
            store, alice, AuditAction.apply, "events/", created=[f"e{i}" for i in range(250)]
        )
        await audit.record(store, alice, AuditAction.variable_set, "K", blob="x" * 10_000)
        everything = await audit.read(store)
        for not_alice in (hook, visitor, big_alice):
            await audit.record(store, not_alice, AuditAction.trigger, "x", audit.REFUSED)
        mine = await audit.read(store, user="alice")
        underscored = await audit.read(store, user="a_b")
        wildcard = await audit.read(store, user="a%")
        nightly = await audit.read(store, event="nightly")
        later = await audit.read(store, since=datetime.now(timezone.utc) + timedelta(minutes=1))
        return everything, mine, underscored, wildcard, nightly, later, pruned

    everything, mine, underscored, wildcard, nightly, later, pruned = run(scenario, store_url)
    assert [(e.actor, e.action, e.target, e.outcome) for e in everything] == [
        ("alice", "pause", "nightly", "ok"),
        ("a_b", "resume", "nightly", "ok"),
        ("token abc of alice", "trigger", "backup", "refused"),
        ("alice", "apply", "events/", "ok"),
        ("alice", "variable.set", "K", "ok"),
    ]
    assert everything[2].detail == {"status": 401} and everything[2].source == "10.1.1.3"
    assert len(everything[3].detail["created"]) == 100
    assert everything[3].detail["created_not_listed"] == 150  # cut, and said so
    assert everything[4].detail["truncated"] is True
    assert len(everything[4].detail["detail_start"]) == audit.DETAIL_CHARS
    # alice's own actions and her token's; not a hook, a failed sign-in or Alice's token.
    assert [e.actor for e in mine] == ["alice", "token abc of alice", "alice", "alice"]
    assert [e.actor for e in underscored] == ["a_b"] and wildcard == []
    assert [e.action for e in nightly] == ["pause", "resume"]
    assert later == [] and pruned == 1  # the two-year-old entry, and only it
    assert all(e.at.tzinfo is not None for e in everything)
