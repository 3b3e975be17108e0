"""An event that declares `variables` reads only those (one request, filtered by the
server), ships only those to where it runs (Docker or SSH), may write only those (a write
to another fails the run and saves none), and its templates see only those. An event
without the field sees every variable of its owner, as before the field existed."""

from __future__ import annotations

import asyncio
import json

import pytest
from prefect.blocks.notifications import CustomWebhookNotificationBlock

import cronium_prefect.blocks.variable_store as variable_store
from cronium_prefect import parse_text
from cronium_prefect.blocks.variable_store import get_variable_store
from cronium_prefect.names import messages_artifact_key
from tests.integration.helpers import record_json, runs_at_once
from tests.integration.test_messages import _artifact
from tests.receivers import HttpReceiver

from .report import report

OWNER = "lp-team"
# Every file shipped in in/vars, and the variables.json the helpers read.
SHOW = (
    'printf \'{"listed": "%s", "all": %s, "key_length": %s}\' '
    '"$(ls "$CRONIUM_DIR/in/vars" | tr "\\n" ,)" "$(cat "$CRONIUM_DIR/in/variables.json")" '
    '"$(cronium_getVariable LP_KEY | tr -d "\\n" | wc -c)" > "$CRONIUM_DIR/out/output.json"'
)


@pytest.fixture
def variables(prefect_api):
    store = get_variable_store()
    store.set("LP_A", "global-a")
    store.set("LP_A", "team-a", owner=OWNER)  # the owner's scope wins
    store.set("LP_KEY", "lp-key-0d7c2a", secret=True)
    store.set("LP_OTHER", "other")
    store.set("LP_HIDDEN", "lp-hidden-91fe", secret=True)
    store.set("LP_TEAM_ONLY", "team-only", owner=OWNER)
    store.set("LP_W", 1)
    return store


def _event(name: str, body: str, where: str = "", declared: str | None = "[LP_A, LP_KEY]"):
    lines = [f"name: {name}", "type: bash", f"owner: {OWNER}", "timeout: 2m", where]
    if declared is not None:
        lines.append(f"variables: {declared}")
    (event,) = parse_text("\n".join(lines) + f"\nscript: {json.dumps(body)}\n")
    return event


def _records(events):
    states = asyncio.run(runs_at_once([(e, None) for e in events]))
    return [record_json(s.result(raise_on_failure=False)) for s in states]


@pytest.mark.parametrize("remote", [False, True], ids=["docker", "ssh"])
def test_only_declared_variables_are_read_and_shipped(
    stack, ssh_server, variables, remote, monkeypatch
):
    where = 'run_location: remote\nservers: ["rel-lp"]' if remote else ""
    if remote:
        ssh_server("rel-lp")
    returned: list[str] = []
    read = variable_store.read_documents_sync

    def counted(client, where, include_secrets=False):
        documents = read(client, where, include_secrets)
        returned.extend(d["data"].get("key") for d in documents)
        return documents

    monkeypatch.setattr(variable_store, "read_documents_sync", counted)
    kind = "ssh" if remote else "docker"
    declared, none, legacy = _records(
        [
            _event(f"rel-lp-{kind}-declared", SHOW, where),
            _event(f"rel-lp-{kind}-none", SHOW, where, declared="[]"),
            _event(f"rel-lp-{kind}-legacy", SHOW, where, declared=None),
        ]
    )
    assert declared["status"] == "SUCCESS", declared
    assert declared["output"]["listed"] == "LP_A,LP_KEY,"
    assert declared["output"]["all"] == {"LP_A": "team-a", "LP_KEY": "***"}
    assert declared["output"]["key_length"] == len("lp-key-0d7c2a")
    assert none["status"] == "SUCCESS", none
    assert none["output"]["listed"] == "" and none["output"]["all"] == {}
    assert none["output"]["key_length"] == 0
    # No field: every variable of the owner's, as before (the undeclared ones included).
    shown = legacy["output"]["listed"].split(",")
    assert {"LP_A", "LP_KEY", "LP_OTHER", "LP_HIDDEN", "LP_TEAM_ONLY"} <= set(shown)
    # Only the legacy run read undeclared documents: the declared runs' requests were
    # filtered by the server, so LP_HIDDEN came back once, for the legacy run.
    assert returned.count("LP_HIDDEN") == 1 and returned.count("LP_TEAM_ONLY") == 1
    report(f"least_privilege_{kind}", {"documents_returned": len(returned)})


def test_a_write_to_an_undeclared_variable_fails_the_run_and_saves_none(stack, variables):
    (record,) = _records(
        [
            _event(
                "rel-lp-writes",
                "cronium_setVariable LP_W 2\ncronium_setVariable LP_UNDECLARED 1\n"
                "cronium_setVariable LP_ALSO 1",
                declared="[LP_W]",
            )
        ]
    )
    assert record["status"] == "FAILURE", record
    assert "LP_ALSO, LP_UNDECLARED, not in the event's variables (LP_W)" in record["error"]
    assert "none of its variable writes was saved" in record["error"]
    assert variables.get("LP_W").value == 1
    assert variables.get("LP_UNDECLARED", OWNER) is None and variables.get("LP_ALSO") is None


def test_templates_see_only_declared_variables(stack, variables):
    """A message of an event that declares [LP_A] cannot render an undeclared variable
    (a secret, an owner-scoped one): the template fails, its delivery says so, nothing is
    sent, and the run's status stands."""
    receiver = HttpReceiver().start()
    try:
        CustomWebhookNotificationBlock(
            name="rel-lp-hook", url=receiver.url("/hook"), json_data={"text": "{{body}}"}
        ).save("rel-lp-hook", overwrite=True)
        (event,) = parse_text(
            f"""\
name: rel-lp-template
type: bash
owner: {OWNER}
variables: [LP_A]
script: cronium_output ok
actions:
  - on: success
    send_message: {{block: rel-lp-hook, message: "{{{{ var.LP_HIDDEN }}}}"}}
  - on: success
    send_message: {{block: rel-lp-hook, message: "{{{{ var.LP_TEAM_ONLY }}}}"}}
  - on: success
    send_message: {{block: rel-lp-hook, message: "a={{{{ var.LP_A }}}}"}}
"""
        )
        (record,) = _records([event])
    finally:
        receiver.stop()
    assert record["status"] == "SUCCESS", record
    deliveries = _artifact(messages_artifact_key("rel-lp-template"))
    assert [d["status"] for d in deliveries] == ["failed", "failed", "sent"], deliveries
    assert "LP_HIDDEN" in deliveries[0]["error"] and "LP_TEAM_ONLY" in deliveries[1]["error"]
    assert [json.loads(r.body)["text"] for r in receiver.requests] == ["a=team-a"]
