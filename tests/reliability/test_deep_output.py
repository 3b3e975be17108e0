"""Deeply nested JSON (hundreds to a hundred thousand levels) cannot break a run: output
over the nesting cap ends the run FAILURE with an error naming the cap, the record is
stored, `on: failure` and `on: always` actions still run, and the run's variable writes
are saved. An HTTP answer nested too deep is kept whole, as text. Deep input and deep
variable values are refused before anything is sent, with exit 2."""

from __future__ import annotations

import asyncio
import json
from uuid import UUID

from prefect.blocks.notifications import CustomWebhookNotificationBlock
from prefect.client.orchestration import get_client

from cronium_prefect import parse_text
from cronium_prefect.blocks.variable_store import get_variable_store
from cronium_prefect.flows.report import read_record
from tests.cli import cronium
from tests.integration.helpers import record_json, runs_at_once
from tests.receivers import HttpReceiver

from .report import report

# (case, language, script): each writes DEEP_<n> = n and an output nested too deep.
CASES = [
    ("65 arrays", "python", "cronium.output(json.loads('[' * 65 + ']' * 65))"),
    ("1,000 objects", "python", "open(OUT, 'w').write('{\"a\":' * 1000 + '1' + '}' * 1000)"),
    ("100,000 brackets", "python", "open(OUT, 'w').write('[' * 100000 + ']' * 100000)"),
    ("5,000 levels as bash text", "bash", None),
]


def _event(index: int, language: str, body: str | None, hook: str):
    if language == "python":
        script = (
            "import json, os, cronium\n"
            "OUT = os.path.join(os.environ['CRONIUM_DIR'], 'out', 'output.json')\n"
            f"cronium.setVariable('DEEP_{index}', {index})\n{body}\n"
        )
    else:
        script = (
            f"cronium_setVariable DEEP_{index} {index}\n"
            'cronium_output "$(printf "%.0s[" $(seq 5000))$(printf "%.0s]" $(seq 5000))"\n'
        )
    definition = {
        "name": f"rel-deep-{index}",
        "type": language,
        "variables": [f"DEEP_{index}"],
        "script": script,
        "actions": [
            {"on": "failure", "send_message": {"block": hook, "message": "failed {{ run.id }}"}},
            {"on": "always", "send_message": {"block": hook, "message": "always {{ run.id }}"}},
        ],
    }
    (event,) = parse_text(json.dumps(definition))
    return event


async def _stored_record(run_id: str):
    async with get_client() as client:
        return await read_record(client, UUID(run_id))


def test_deep_output_fails_the_run_but_keeps_record_actions_and_variables(stack):
    receiver = HttpReceiver().start()
    try:
        CustomWebhookNotificationBlock(
            name="rel-deep-hook", url=receiver.url("/hook"), json_data={"text": "{{body}}"}
        ).save("rel-deep-hook", overwrite=True)
        events = [
            _event(i, language, body, "rel-deep-hook")
            for i, (_, language, body) in enumerate(CASES)
        ]
        states = asyncio.run(runs_at_once([(e, None) for e in events]))
        records = [record_json(s.result(raise_on_failure=False)) for s in states]
    finally:
        receiver.stop()
    texts = [json.loads(r.body)["text"] for r in receiver.requests]
    store = get_variable_store()
    seen = {}
    for index, ((case, _, _), record) in enumerate(zip(CASES, records, strict=True)):
        assert record["status"] == "FAILURE", (case, record)
        assert "over the limit of 64" in record["error"], (case, record["error"])
        assert store.get(f"DEEP_{index}").value == index, case
        stored = asyncio.run(_stored_record(record["run_id"]))
        assert stored is not None and stored.status.value == "FAILURE", case
        run = record["run_id"]
        assert f"failed {run}" in texts and f"always {run}" in texts, (case, texts)
        seen[case] = record["error"]
    report("deep_output", seen)


def test_a_deep_http_answer_is_kept_whole_as_text(stack):
    body = ("[" * 5000 + "]" * 5000).encode()
    server = HttpReceiver(reply=body, headers={"Content-Type": "application/json"}).start()
    try:
        (event,) = parse_text(
            f"name: rel-deep-http\ntype: http\nhttp: {{method: GET, url: '{server.url('/x')}'}}\n"
        )
        (state,) = asyncio.run(runs_at_once([(event, None)]))
    finally:
        server.stop()
    record = record_json(state.result(raise_on_failure=False))
    assert record["status"] == "SUCCESS", record
    assert record["output"]["body"] == body.decode()


def test_deep_input_and_variable_values_are_refused_with_exit_2(prefect_api):
    for depth in (65, 5000, 50000):  # 50,000: 100 KB, within one argument's 128 KiB
        deep = "[" * depth + "]" * depth
        done = cronium("run", "no-such-event-needed", "--input", deep)
        assert done.returncode == 2, done.stderr
        assert "--input nests" in done.stderr and "limit of 64" in done.stderr
        assert "Traceback" not in done.stderr
        done = cronium("var", "set", "REL_DEEP", deep)
        assert done.returncode == 2 and "limit of 64" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
    assert get_variable_store().get("REL_DEEP") is None


def _nested(depth: int) -> list:
    value: list = []
    for _ in range(depth - 1):
        value = [value]
    return value


def test_deep_values_that_came_around_cronium_fail_the_run_with_a_clear_error(stack):
    """Prefect's API and UI take what Cronium would refuse: a deep value saved as a
    variable's block document, a deep input given as the flow run's parameter. A run that
    reads either fails naming it and the cap (no traceback, record stored); `var list`
    names the variable."""
    from cronium_prefect.blocks import CroniumVariable
    from cronium_prefect.variables import document_name

    store, key = get_variable_store(), "REL_DEEP_STORED"
    (reader,) = parse_text(
        f"name: rel-deep-stored\ntype: bash\nvariables: [{key}]\nscript: echo hi\n"
    )
    (plain,) = parse_text("name: rel-deep-input\ntype: bash\nvariables: []\nscript: echo hi\n")
    seen = {}
    try:
        for depth in (65, 3000):
            CroniumVariable.model_construct(
                key=key,
                owner=None,
                secret=False,
                secret_json=None,
                value_json="[" * depth + "]" * depth,
            ).save(document_name(key, None), overwrite=True, _sync=True)
            (state,) = asyncio.run(runs_at_once([(reader, None)]))
            record = record_json(state.result(raise_on_failure=False))
            assert record["status"] == "FAILURE", record
            assert f"variable {key}" in record["error"] and "64" in record["error"], record
            listed = cronium("var", "list")
            assert listed.returncode == 1 and key in listed.stderr, listed.stderr
            assert "Traceback" not in listed.stderr
            seen[f"stored value, {depth} levels"] = record["error"][:80]
    finally:
        store.delete(key)
    for depth in (65, 100):  # deeper, and Prefect's client refuses to send it itself
        (state,) = asyncio.run(runs_at_once([(plain, _nested(depth))]))
        record = record_json(state.result(raise_on_failure=False))
        assert record["status"] == "FAILURE" and record["input"] is None, record
        assert "the run's input nests" in record["error"] and "64" in record["error"], record
        seen[f"input, {depth} levels"] = record["error"][:80]
    report("deep_from_around", seen)
