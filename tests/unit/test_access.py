"""Who may do what (cronium_prefect.access) and the webhook definition (webhook.py): the
rules every caller asks, tried across their families."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from cronium_prefect.access import Actor, Permission, Role, check_scope, may, scope_allows
from cronium_prefect.event import Event
from cronium_prefect.webhook import Webhook, github_sign, sign, signature_matches


@pytest.mark.parametrize(
    "role,allowed",
    [
        (Role.viewer, {Permission.read}),
        (
            Role.operator,
            {Permission.read, Permission.run, Permission.pause, Permission.set_variable},
        ),
        (Role.admin, set(Permission)),
    ],
)
def test_roles_hold_exactly_their_permissions(role, allowed):
    assert {p for p in Permission if may(role, p)} == allowed


def test_scopes_narrow_a_role_and_never_widen_it():
    token = Actor("token", "t", "x", Role.operator, ("run:deploy-*", "read"))
    assert token.may(Permission.run, "deploy-web")
    assert not token.may(Permission.run, "backup")
    assert token.may(Permission.read, "anything")  # read: every run
    assert not token.may(Permission.pause, "deploy-web")
    viewer_token = Actor("token", "t", "x", Role.viewer, ("run:*",))
    assert not viewer_token.may(Permission.run, "deploy-web")
    assert scope_allows(["run:a?c"], Permission.run, "abc")
    assert not scope_allows(["run:a?c"], Permission.run, "abbc")
    assert not scope_allows(["run:deploy-*"], Permission.run, None)


@pytest.mark.parametrize(
    "scope",
    ["", "write", "run", "run:", "run:A", "run:a b", "run:../x", "read:x", "run:" + "a" * 101],
)
def test_bad_scopes_are_refused_by_name(scope):
    with pytest.raises(ValueError, match="scope"):
        check_scope(scope)


def _event(webhook):
    return {"name": "hooked", "type": "bash", "script": "true", "webhook": webhook}


@pytest.mark.parametrize(
    "webhook,field",
    [
        ({"auth": "hmac"}, "needs secret"),
        ({"auth": "github"}, "needs secret"),
        ({"auth": "basic", "secret": "s"}, "auth"),
        ({"secret": "Has Spaces"}, "secret"),
        ({"secret": "s", "allow": ["10.0.0.0/33"]}, "allow"),
        ({"secret": "s", "allow": ["not-an-address"]}, "allow"),
        ({"secret": "s", "rate": "fast"}, "rate"),
        ({"secret": "s", "rate": "10/fortnight"}, "rate"),
        ({"secret": "s", "replay_window": "2d"}, "replay_window"),
        ({"secret": "s", "replay_window": 0}, "replay_window"),
        ({"secret": "s", "token": "inline"}, "token"),  # no secret in the definition
    ],
)
def test_a_bad_webhook_definition_is_refused_naming_the_field(webhook, field):
    with pytest.raises(ValidationError) as caught:
        Event.model_validate(_event(webhook))
    assert field in str(caught.value)


def test_allow_list_and_signatures():
    hook = Webhook(secret="s", allow=["10.0.0.0/8", "fd00::/8"])
    assert hook.admits("10.1.2.3") and hook.admits("fd00::1")
    for address in ["11.0.0.1", "127.0.0.1", "", None, "10.0.0.1 ", "::ffff:10.0.0.1x"]:
        assert not hook.admits(address)
    assert Webhook().admits("203.0.113.9")  # no list: anyone (credentials still needed)
    signed = sign("k", "1700000000", b"{}")
    assert signature_matches(signed, signed)
    for wrong in [None, "", signed.upper(), signed[:-1], "sha256=" + "0" * 64, signed + "é"]:
        assert not signature_matches(signed, wrong)
    assert github_sign("k", b"{}") != sign("k", "", b"{}")


def test_ipv4_callers_seen_through_a_dual_stack_listener_match_ipv4_networks():
    hook = Webhook(secret="s", allow=["10.0.0.0/8"])
    assert hook.admits("::ffff:10.0.0.1")
    assert not hook.admits("::ffff:11.0.0.1")


def test_a_signed_request_cannot_be_replayed_while_its_timestamp_is_acceptable(monkeypatch):
    """A timestamp from the future stays acceptable for longer than `now + window`: the
    signature is remembered until the timestamp itself leaves the window."""
    from cronium_prefect.service import hooks

    clock = [1_700_000_000.0]
    monkeypatch.setattr(hooks.time, "time", lambda: clock[0])
    door = hooks.Hooks(store=None, client=None, body_limit=1, input_limit=1)
    window = 60
    stamp = clock[0] + 59  # a sender whose clock runs 59 s ahead
    assert door._first_time("sig-a", stamp + window)
    assert not door._first_time("sig-a", stamp + window)  # at once: a replay
    clock[0] += 61  # past now + window, but the timestamp is still acceptable
    assert abs(clock[0] - stamp) <= window
    assert not door._first_time("sig-a", stamp + window)
    clock[0] = stamp + window + 1  # the timestamp itself is refused from here on
    assert door._first_time("sig-b", clock[0] + window)


def test_refusals_past_the_rate_are_counted_and_said_by_the_next_recorded_one():
    import asyncio
    import time

    from cronium_prefect.service.audit import RefusalGate

    async def scenario():
        gate = RefusalGate("2/second")
        seen = [await gate.admit("10.0.0.1") for _ in range(5)]
        other = await gate.admit("10.0.0.2")  # another address has its own count
        time.sleep(1.1)
        return seen, other, await gate.admit("10.0.0.1")

    seen, other, later = asyncio.run(scenario())
    assert seen == [{}, {}, None, None, None] and other == {}
    assert later == {"not_recorded_before": 3}
