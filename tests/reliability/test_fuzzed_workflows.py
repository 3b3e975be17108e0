"""Generated invalid workflow definitions: a valid workflow mutated (wrong types, unknown
keys, bad names, huge and deep values, cycles, broken templates, bad needs, random bytes
and encodings, YAML oddities), seeded. Each one is a clear error naming the file and the
field, and `cronium apply` exits 2 with that message and no traceback, before it contacts
any server."""

from __future__ import annotations

import copy
import json
import os
import random
import string
import subprocess
import sys
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from cronium_prefect import documents
from cronium_prefect.errors import InvalidEvent
from cronium_prefect.loader import load_definitions

from .report import report

SEED = 20240611
CLI = [sys.executable, "-m", "cronium_prefect.cli"]
REFUSED = "invalid definitions, nothing was applied"

BASE: dict[str, Any] = {
    "kind": "workflow",
    "name": "fzw",
    "description": "the fuzzer's valid workflow",
    "status": "active",
    "schedule": {"cron": "0 * * * *"},
    "priority": "normal",
    "overlap": "skip",
    "timeout": "1h",
    "max_parallel": 4,
    "on_failure": "fail_fast",
    "tags": ["t"],
    "owner": "ana",
    "actions": [{"on": "failure", "run_event": "fz-alert"}],
    "steps": [
        {"name": "fetch", "event": "fz-fetch"},
        {
            "name": "each",
            "needs": ["fetch"],
            "for_each": "{{ steps.fetch.output.items }}",
            "max_parallel": 2,
            "input": {"item": "{{ item }}", "run": "{{ workflow.run_id }}"},
            "run": {"type": "bash", "script": "echo each", "timeout": "5m"},
        },
        {"name": "side", "needs": [{"step": "fetch", "on": "condition"}], "event": "fz-side"},
        {
            "name": "merge",
            "needs": ["each", {"step": "side", "on": "always"}],
            "join": "any",
            "input": "{{ steps.each.output }} {{ steps['fetch'].output }}",
            "event": "fz-merge",
        },
    ],
}
EVENT_STEPS = [0, 2, 3]  # the steps that name a deployed event
FOR_EACH_STEP = 1
RUN_STEP = 1

WRONG: dict[str, list[Any]] = {
    "kind": ["Workflow", "flow", 1, ["workflow"], None],
    "name": [123, True, ["fzw"], {"a": 1}, "Bad Name", "-lead", "a" * 101, "", None],
    "description": [123, ["d"], {"d": 1}, "d" * 501],
    "status": ["running", 1, True, ["active"]],
    "schedule": ["hourly", 5, ["0 * * * *"], {}, {"cron": "61 * * * *"}, {"interval": "soon"}],
    "priority": ["urgent", 1, ["high"]],
    "overlap": ["wait", 0, True],
    "timeout": ["forever", "-5m", 0, -1, "8d", [5], {"m": 5}, 10**12],
    "max_parallel": [0, 101, "4", 2.5, True, -1, [4], None],
    "on_failure": ["stop", 1, ["continue"], True, "fail-fast"],
    "tags": ["t", 5, {"t": 1}, [""], [5], ["x" * 101]],
    "owner": [5, ["ana"], "has space", "x" * 101],
    "pool": ["a/b", "prefect-pool", 5, "far pool"],
    "actions": [
        "notify",
        5,
        {"on": "success"},
        [5],
        [{"on": "success"}],
        [{"on": "sometimes", "run_event": "x"}],
        [{"on": "failure", "run_event": "fzw"}],
    ],
    "webhook": ["yes", 5, {"nope": 1}],
    "steps": [[], "fetch", 5, {"name": "a"}, [None], ["fetch"], [[1]], None],
}

STEP_WRONG: dict[str, list[Any]] = {
    "name": [5, "Bad_Name", "", "x" * 101, None, ["a"], "-lead"],
    "needs": [
        "fetch",
        5,
        [5],
        [None],
        [["fetch"]],
        [{"step": "fetch", "on": "sometimes"}],
        [{"step": "fetch", "on": True}],
        [{"on": "success"}],
        [{"step": "fetch", "extra": 1}],
        ["Bad Name"],
        [{"step": 5}],
    ],
    "join": ["some", 1, None, ["any"], "ALL"],
}
EVENT_WRONG = [5, "Has Space", ["e"], "", {"name": "e"}, "x" * 101]
FOR_EACH_WRONG = [5, {"a": 1}, "items", True, 2.5, "steps.fetch.output"]
MAX_PARALLEL_WRONG = [0, 101, "2", 1.5, True, -3, 10**40]
RUN_WRONG = [
    ("int", 5, ".run"),
    ("text", "bash", ".run"),
    ("list", [], ".run"),
    ("ruby", {"type": "ruby", "script": "x"}, ".run.type"),
    ("no-script", {"type": "bash"}, ".run"),
    ("no-type", {"script": "x"}, ".run.type"),
    ("name", {"type": "bash", "script": "x", "name": "x"}, "run.name"),
    ("status", {"type": "bash", "script": "x", "status": "draft"}, "run.status"),
    ("retries", {"type": "bash", "script": "x", "retries": 99}, ".run.retries"),
    ("http-no-section", {"type": "http"}, ".run"),
    ("typo", {"type": "bash", "script": "x", "scirpt": "y"}, ".run.scirpt"),
    ("remote", {"type": "bash", "script": "x", "run_location": "remote"}, ".run"),
    ("env", {"type": "bash", "script": "x", "env": {"CRONIUM_X": "1"}}, ".run.env"),
    ("timeout", {"type": "bash", "script": "x", "timeout": "soon"}, ".run.timeout"),
    ("schedule", {"type": "bash", "script": "x", "schedule": {}}, ".run.schedule"),
    ("script-file", {"type": "bash", "script_file": "nope.sh"}, "nope.sh"),
    ("event-too", "both", ""),
]

TOP_TYPOS = [
    "stepz",
    "nmae",
    "knd",
    "on_falure",
    "max_paralel",
    "shedule",
    "owners",
    "step",
    "descripton",
    "timout",
    "Steps",
    "NAME",
    "on-failure",
    "tag",
    "action",
    "hook",
]
STEP_TYPOS = [
    "neds",
    "evnet",
    "for-each",
    "foreach",
    "joins",
    "inputs",
    "max_parallell",
    "runs",
    "need",
    "Name",
    "steps",
    "when",
    "if",
    "depends_on",
]
NEED_TYPOS = ["onn", "stpe", "when", "On", "step_name", "condition"]
RUN_TYPOS = ["scirpt", "tpye", "retry", "enviroment", "schedul"]

BROKEN_TEMPLATES = [
    "{{ steps.fetch.output ",
    "{{ }}",
    "{% if %}",
    "{% for x in input %}",
    "{{ steps.fetch.output | }}",
    "{{ 1 + }}",
    "{% endfor %}",
    "{{ steps.fetch.output }",
    "{{ ' }}",
    "{{ a.b( }}",
    "{% set %}",
    "{{ x }} {# never closed",
    "{{ steps[ }}",
    "{{ steps.fetch.output ]] }}",
    "{% if x %}{% else %}{% else %}{% endif %}",
    "{% macro %}",
    "{{ input | }}{{",
    "{% nosuchtag %}",
    "{{ 'a' ~ }}",
]
TOKENS = ["{{", "}}", "{%", "%}", "steps", "fetch", *".()|'[] x1"]


def _doc(data: Any) -> bytes:
    # JSON is YAML: the loader reads it with the YAML 1.2 rules and keeps line numbers.
    return json.dumps(data, indent=1).encode()


def _base() -> dict[str, Any]:
    return copy.deepcopy(BASE)


def _with_step(index: int, **changes: Any) -> dict[str, Any]:
    data = _base()
    data["steps"][index].update(changes)
    return data


def _without(data: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k != key}


def _nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = {"k": value}
    return value


def _chain_with_back_edge(rng: random.Random, size: int) -> dict[str, Any]:
    """A chain s0 <- s1 <- ... plus random forward needs, and one need that goes back."""
    steps = []
    for i in range(size):
        needs = {f"s{i - 1}"} if i else set()
        needs |= {f"s{j}" for j in range(i - 1) if rng.random() < 0.2}
        steps.append({"name": f"s{i}", "event": "fz-e", "needs": sorted(needs)})
    early = rng.randrange(0, size - 1)
    late = rng.randrange(early + 1, size)
    steps[early]["needs"].append(f"s{late}")
    return {**_base(), "steps": steps}


def _random_bytes(rng: random.Random, size: int) -> bytes:
    raw = bytearray(rng.randrange(256) for _ in range(size))
    raw[rng.randrange(size)] = 0xFF  # never valid UTF-8
    return bytes(raw)


def cases() -> list[tuple[str, bytes, list[str]]]:
    rng = random.Random(SEED)
    found: list[tuple[str, bytes, list[str]]] = []

    def add(case: str, raw: bytes, fragments: list[str]) -> None:
        found.append((case, raw, fragments))

    # Wrong values for every top-level field.
    for field, values in WRONG.items():
        for i, value in enumerate(values):
            fragment = "kind" if field == "kind" else field
            add(f"{field}-wrong-{i}", _doc({**_base(), field: value}), [fragment])
    for field in ("kind", "name", "steps"):
        add(f"missing-{field}", _doc(_without(_base(), field)), [field])

    # Wrong values for steps' fields, on a step chosen by the seed.
    for field, values in STEP_WRONG.items():
        for i, value in enumerate(values):
            index = (
                rng.randrange(1, len(BASE["steps"]))
                if field == "needs"
                else rng.choice(EVENT_STEPS)
            )
            add(
                f"step-{field}-wrong-{i}",
                _doc(_with_step(index, **{field: value})),
                [f"steps[{index}]"],
            )
    for i, value in enumerate(EVENT_WRONG):
        index = rng.choice(EVENT_STEPS)
        add(
            f"step-event-wrong-{i}", _doc(_with_step(index, event=value)), [f"steps[{index}].event"]
        )
    for i, value in enumerate(FOR_EACH_WRONG):
        add(
            f"step-for_each-wrong-{i}",
            _doc(_with_step(FOR_EACH_STEP, for_each=value)),
            [f"steps[{FOR_EACH_STEP}].for_each"],
        )
    for i, value in enumerate(MAX_PARALLEL_WRONG):
        add(
            f"step-max_parallel-wrong-{i}",
            _doc(_with_step(FOR_EACH_STEP, max_parallel=value)),
            [f"steps[{FOR_EACH_STEP}].max_parallel"],
        )
    for index in EVENT_STEPS:
        add(
            f"max_parallel-without-for_each-{index}",
            _doc(_with_step(index, max_parallel=2)),
            [f"steps[{index}]", "max_parallel goes with for_each"],
        )
    for label, value, where in RUN_WRONG:
        if value == "both":
            data = _with_step(0, run={"type": "bash", "script": "x"})
            add(f"run-{label}", _doc(data), ["steps[0]", "exactly one of event"])
            continue
        add(f"run-{label}", _doc(_with_step(RUN_STEP, run=value)), [where])
    for index in EVENT_STEPS:
        data = _base()
        del data["steps"][index]["event"]
        add(f"step-without-target-{index}", _doc(data), [f"steps[{index}]", "exactly one of"])
    for index in range(len(BASE["steps"])):
        data = _base()
        del data["steps"][index]["name"]
        add(f"step-without-name-{index}", _doc(data), [f"steps[{index}].name", "Field required"])

    # Unknown keys and typos, at each level.
    for typo in TOP_TYPOS:
        add(f"typo-top-{typo}", _doc({**_base(), typo: "x"}), [typo, "unknown field"])
    for typo in STEP_TYPOS:
        index = rng.randrange(len(BASE["steps"]))
        add(f"typo-step-{typo}", _doc(_with_step(index, **{typo: "x"})), [f"steps[{index}].{typo}"])
    for typo in NEED_TYPOS:
        data = _with_step(3, needs=["each", {"step": "side", "on": "always", typo: "x"}])
        add(f"typo-need-{typo}", _doc(data), [f"steps[3].needs[1].{typo}"])
    for typo in RUN_TYPOS:
        run = {**BASE["steps"][RUN_STEP]["run"], typo: "x"}
        add(
            f"typo-run-{typo}",
            _doc(_with_step(RUN_STEP, run=run)),
            [f"steps[{RUN_STEP}].run.{typo}"],
        )
    for i in range(12):  # seeded garbage keys
        key = "".join(rng.choice(string.ascii_letters + "_-") for _ in range(rng.randrange(1, 12)))
        key = f"x{key}"  # never a real field
        if rng.random() < 0.5:
            add(f"garbage-key-top-{i}", _doc({**_base(), key: rng.random()}), [key])
        else:
            index = rng.randrange(len(BASE["steps"]))
            add(
                f"garbage-key-step-{i}",
                _doc(_with_step(index, **{key: 1})),
                [f"steps[{index}].{key}"],
            )

    # The graph: cycles, needs naming no step or the step itself, names twice.
    cycle_fetch = _with_step(0, needs=["merge"])
    add("cycle-through-the-diamond", _doc(cycle_fetch), ["needs form a cycle"])
    add("cycle-two", _doc(_with_step(2, needs=["fetch", "merge"])), ["needs form a cycle"])
    for i in range(20):
        data = _chain_with_back_edge(rng, rng.randrange(2, 40))
        add(f"cycle-random-{i}", _doc(data), ["needs form a cycle"])
    for index, step in enumerate(BASE["steps"]):
        data = _with_step(index, needs=[*step.get("needs", []), step["name"]])
        add(f"needs-itself-{index}", _doc(data), [f"steps[{index}].needs", "needs itself"])
    for i in range(6):
        index = rng.randrange(len(BASE["steps"]))
        ghost = f"ghost-{rng.randrange(1000)}"
        data = _with_step(index, needs=[*BASE["steps"][index].get("needs", []), ghost])
        add(f"needs-ghost-{i}", _doc(data), [f"steps[{index}].needs", f"no step named '{ghost}'"])
    add("needs-twice", _doc(_with_step(3, needs=["each", "each"])), ["steps[3]", "listed twice"])
    add(
        "needs-twice-other-condition",
        _doc(_with_step(3, needs=["each", {"step": "each", "on": "failure"}])),
        ["steps[3]", "listed twice"],
    )
    for index in range(1, len(BASE["steps"])):
        data = _base()
        data["steps"][index]["name"] = BASE["steps"][index - 1]["name"]
        add(f"step-name-twice-{index}", _doc(data), ["defined twice"])
    long_names = {**_base(), "name": "w" * 60}
    long_names["steps"][RUN_STEP]["name"] = "s" * 60
    long_names["steps"][3]["needs"] = ["s" * 60, {"step": "side", "on": "always"}]
    long_names["steps"][3]["input"] = "{{ steps.fetch.output }}"
    add("inline-event-name-too-long", _doc(long_names), [f"steps[{RUN_STEP}].run"])

    # Templates: broken ones, and reads of steps that are not upstream.
    for i, template in enumerate(BROKEN_TEMPLATES):
        index = rng.randrange(len(BASE["steps"]))
        where = rng.choice(["input", "nested", "for_each"])
        if where == "input":
            add(
                f"template-broken-{i}",
                _doc(_with_step(index, input=template)),
                [f"steps[{index}].input"],
            )
        elif where == "nested":
            value = {"a": [1, {"b": template}]}
            add(
                f"template-broken-{i}",
                _doc(_with_step(index, input=value)),
                [f"steps[{index}].input.a[1].b"],
            )
        else:
            data = _with_step(FOR_EACH_STEP, for_each=template)
            add(f"template-broken-{i}", _doc(data), [f"steps[{FOR_EACH_STEP}].for_each"])
    for i in range(20):  # seeded token soup, left open at its end: never parses
        soup = "".join(rng.choice(TOKENS) for _ in range(rng.randrange(1, 30))) + " {{"
        index = rng.randrange(len(BASE["steps"]))
        add(
            f"template-soup-{i}",
            _doc(_with_step(index, input={"t": soup})),
            [f"steps[{index}].input.t"],
        )
    reads = [
        (0, "{{ steps.merge.output }}", "not upstream of 'fetch'"),
        (2, "{{ steps.each.output }}", "not upstream of 'side'"),
        (3, "{{ steps.merge.output }}", "not upstream of 'merge'"),
        (3, "{{ steps['ghost'].output }}", "which is no step"),
        (0, "{% for x in steps.side.output %}{{ x }}{% endfor %}", "not upstream of 'fetch'"),
        (2, "{{ steps.fetch.output ~ steps.nope.output }}", "which is no step"),
    ]
    for i, (index, template, message) in enumerate(reads):
        add(
            f"template-reads-{i}",
            _doc(_with_step(index, input=[template])),
            [f"steps[{index}].input[0]", message],
        )
        data = _with_step(FOR_EACH_STEP, for_each=template.replace("fetch", "side"))
        if index == 0:
            add(f"template-for_each-reads-{i}", _doc(data), [f"steps[{FOR_EACH_STEP}].for_each"])

    # Huge and deep values.
    add(
        "steps-501",
        _doc({**_base(), "steps": [{"name": f"s{i}", "event": "e"} for i in range(501)]}),
        ["steps"],
    )
    add("description-huge", _doc({**_base(), "description": "d" * 100_000}), ["description"])
    add("input-nested-70", _doc(_with_step(0, input=_nested(70))), ["deeper"])
    add("needs-nested-70", _doc(_with_step(3, needs=_nested(70))), ["deeper"])
    add("input-6mb", _doc(_with_step(0, input="x" * 6_000_000)), ["limited"])
    add(
        "max_parallel-5000-digits",
        _doc({**_base(), "max_parallel": 1}).replace(
            b'"max_parallel": 1', b'"max_parallel": ' + b"9" * 5000
        ),
        ["more than 4300 digits"],
    )
    add("timeout-huge", _doc({**_base(), "timeout": "99999999d"}), ["timeout"])
    add("name-huge", _doc({**_base(), "name": "a" * 10_000}), ["name"])
    add("tags-many-huge", _doc({**_base(), "tags": ["x" * 200] * 50}), ["tags"])
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
        for p, c in zip("abcdefgh", "bcdefghi", strict=True)
    )
    add("yaml-bomb", ("kind: workflow\nname: fzw\n" + bomb).encode(), ["too large"])
    levels = ["x: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"] + [
        f"{c}: &{c} [{', '.join([f'*{p}'] * 10)}]" for p, c in zip("abcd", "bcde", strict=True)
    ]
    inner = "".join(f"      {line}\n" for line in levels)
    add(
        "yaml-bomb-in-input",
        f"kind: workflow\nname: fzw\nsteps:\n  - name: a\n    event: e\n    input:\n{inner}".encode(),
        ["too large"],
    )
    add(
        "deep-flow-list",
        b"kind: workflow\nname: fzw\nsteps: " + b"[" * 300 + b"]" * 300 + b"\n",
        ["deeper"],
    )

    # Bytes and encodings.
    text = yaml.safe_dump(_base(), sort_keys=False).encode()
    for i in range(10):
        add(f"random-bytes-{i}", _random_bytes(rng, rng.randrange(1, 400)), ["not UTF-8"])
    for i in range(8):
        at = rng.randrange(len(text))
        add(
            f"bad-byte-at-{i}",
            text[:at] + bytes([rng.choice([0x80, 0xC3, 0xFE, 0xFF])]) + b"\x00" + text[at:],
            [],
        )
    add("utf-16", yaml.safe_dump(_base()).encode("utf-16"), ["not UTF-8"])
    add("utf-32", yaml.safe_dump(_base()).encode("utf-32"), ["not UTF-8"])
    add("latin-1", text.replace(b"the fuzzer", "caf\xe9".encode("latin-1")), ["not UTF-8"])
    add("nul-in-text", text.replace(b"fetch", b"fe\x00tch", 1), [])
    add("control-chars", text.replace(b"each", b"ea\x07ch", 1), [])
    add("truncated-utf8", text + "é".encode()[:1], ["not UTF-8"])

    # YAML oddities.
    head = "kind: workflow\nname: fzw\n"
    oddities = [
        ("tab-indent", head + "steps:\n\t- name: a\n\t  event: e\n", []),
        ("unclosed-flow", head + "steps: [{name: a, event: e}\n", ["invalid YAML"]),
        ("undefined-alias", head + "steps: *nope\n", ["invalid YAML"]),
        # A tag on a collection is ignored (the loader builds collections itself) ...
        ("python-tag-on-mapping", head + "steps: !!python/object:os.system {}\n", ["steps"]),
        ("custom-tag-on-list", head + "steps: !mine [1]\n", ["steps[0]"]),
        # ... and refused on a scalar.
        ("python-tag-on-scalar", head + "steps: !!python/name:os.system x\n", ["invalid YAML"]),
        ("custom-tag-on-scalar", head + "steps: [{name: a, event: !mine e}]\n", ["invalid YAML"]),
        ("top-level-list", "- " + json.dumps(BASE) + "\n", ["must be a mapping"]),
        ("top-level-scalar", "workflow\n", ["must be a mapping"]),
        ("top-level-number", "42\n", ["must be a mapping"]),
        (
            "duplicate-top-key",
            head + "name: fzw2\nsteps: [{name: a, event: e}]\n",
            ["duplicate key 'name'"],
        ),
        (
            "duplicate-step-key",
            head + "steps:\n  - name: a\n    event: e\n    event: f\n",
            ["duplicate key 'event'"],
        ),
        (
            "duplicate-need-key",
            head
            + "steps:\n  - {name: a, event: e}\n  - name: b\n    event: e\n    needs: [{step: a, step: a}]\n",
            ["duplicate key 'step'"],
        ),
        (
            "merge-key-unknown",
            head + "base: &b {name: a, event: e, retries: 1}\nsteps:\n  - <<: *b\n",
            ["retries"],
        ),
        (
            "merge-key-in-step",
            head + "steps:\n  - <<: {name: a, event: e, bogus: 1}\n",
            ["steps[0].bogus"],
        ),
        (
            "on-yes",
            head
            + "steps:\n  - {name: a, event: e}\n  - {name: b, event: e, needs: [{step: a, on: yes}]}\n",
            ["steps[1].needs[0].on", "'yes'"],
        ),
        (
            "on-true",
            head
            + "steps:\n  - {name: a, event: e}\n  - {name: b, event: e, needs: [{step: a, on: true}]}\n",
            ["steps[1].needs[0].on"],
        ),
        (
            "on-null",
            head
            + "steps:\n  - {name: a, event: e}\n  - {name: b, event: e, needs: [{step: a, on: ~}]}\n",
            ["steps[1].needs[0].on"],
        ),
        (
            "list-key",
            head + "steps:\n  - {[a]: 1, name: a, event: e}\n",
            ["mapping keys must be plain values"],
        ),
        (
            "complex-key",
            head + "? [x, y]\n: 1\nsteps: [{name: a, event: e}]\n",
            ["mapping keys must be plain values"],
        ),
        ("binary", head + "steps: !!binary aGVsbG8=\n", ["steps"]),
        ("set", head + "steps: !!set {a, b}\n", ["steps"]),
        (
            "timestamp-name",
            "kind: workflow\nname: 2024-01-01\nsteps: [{name: a, event: e}]\n",
            ["name"],
        ),
        (
            "impossible-date",
            head + "description: 2024-02-30\nsteps: [{name: a, event: e}]\n",
            ["day is out of range"],
        ),
        ("float-name", "kind: workflow\nname: 1.5\nsteps: [{name: a, event: e}]\n", ["name"]),
        ("null-name", "kind: workflow\nname: ~\nsteps: [{name: a, event: e}]\n", ["name"]),
        (
            "two-docs-same-name",
            head + "steps: [{name: a, event: e}]\n---\n" + head + "steps: [{name: b, event: e}]\n",
            ["name defined twice in this file"],
        ),
        ("doc-end-then-junk", head + "steps: [{name: a, event: e}]\n...\n]]]\n", ["invalid YAML"]),
        ("bad-indent", head + "steps:\n  - name: a\n     event: e\n", ["invalid YAML"]),
        ("unterminated-quote", head + "steps: [{name: 'a, event: e}]\n", ["invalid YAML"]),
        (
            "anchor-on-step-reused-twice",
            head + "steps:\n  - &s {name: a, event: e}\n  - *s\n",
            ["defined twice"],
        ),
        ("block-scalar-steps", head + "steps: |\n  - name: a\n    event: e\n", ["steps"]),
        ("int-key", head + "1: x\nsteps: [{name: a, event: e}]\n", ["Keys should be strings"]),
        ("bool-key", head + "true: x\nsteps: [{name: a, event: e}]\n", ["Keys should be strings"]),
        (
            "huge-int-key",
            head + f"? {'5' * 5000}\n: x\nsteps: [{{name: a, event: e}}]\n",
            ["more than 4300 digits"],
        ),
    ]
    for label, document, fragments in oddities:
        add(f"yaml-{label}", document.encode(), fragments)

    # Random structural mutations: a key of the valid workflow renamed or deleted, seeded.
    paths = [
        (None, k)
        for k in BASE
        if k
        not in (
            "description",
            "tags",
            "actions",
            "schedule",
            "status",
            "priority",
            "overlap",
            "timeout",
            "max_parallel",
            "on_failure",
            "owner",
        )
    ]
    paths += [
        (i, k) for i, s in enumerate(BASE["steps"]) for k in s if k in ("name", "event", "run")
    ]
    for i in range(10):
        where, key = rng.choice(paths)
        data = _base()
        target = data if where is None else data["steps"][where]
        target[key.upper()] = target.pop(key)
        prefix = "" if where is None else f"steps[{where}]."
        add(f"renamed-key-{i}", _doc(data), [f"{prefix}{key.upper()}"])
    return found


CASES = cases()

# Cases that once crashed the loader with a traceback (an unhashable inline tag).
KNOWN_CRASHES = [
    (
        "run-tags-list-in-list",
        _doc(_with_step(RUN_STEP, run={"type": "bash", "script": "x", "tags": [[1]]})),
    ),
    (
        "run-tags-mapping-in-list",
        _doc(_with_step(RUN_STEP, run={"type": "bash", "script": "x", "tags": [{"a": 1}]})),
    ),
]


# Templates that parse but can never render: Jinja finds these when it compiles, which
# the model once did not (core/workflow.py `_references` via templates.referenced).
KNOWN_GAPS = [
    ("unknown-filter", "{{ input | nosuchfilter }}"),
    ("unknown-test", "{{ input is nosuchtest }}"),
    ("block-twice", "{% block b %}{% block b %}{% endblock %}{% endblock %}"),
]


def _write_all(folder) -> list[tuple[str, Any, list[str]]]:
    written = []
    for case, raw, fragments in CASES:
        path = folder / f"{case}.yaml"
        path.write_bytes(raw)
        written.append((case, path, fragments))
    return written


def test_the_base_workflow_is_valid(tmp_path):
    path = tmp_path / "base.yaml"
    path.write_bytes(_doc(BASE))
    (workflow,) = load_definitions([path], references=False).workflows
    assert [s.name for s in workflow.steps] == ["fetch", "each", "side", "merge"]
    path.write_bytes(yaml.safe_dump(BASE, sort_keys=False).encode())
    assert load_definitions([path], references=False).workflows == [workflow]


def test_there_are_at_least_200_distinct_seeded_cases():
    assert len(CASES) >= 200, len(CASES)
    assert len({c[0] for c in CASES}) == len(CASES)
    assert cases() == CASES, "the cases are the same on every call: seeded"


@pytest.mark.parametrize(("case", "raw", "fragments"), CASES, ids=[c[0] for c in CASES])
def test_the_loader_refuses_it_naming_file_and_field(tmp_path, case, raw, fragments):
    path = tmp_path / f"{case}.yaml"
    path.write_bytes(raw)
    with pytest.raises(InvalidEvent) as refused:
        load_definitions([path], references=False)
    message = str(refused.value)
    assert refused.value.problems and all(p.source == str(path) for p in refused.value.problems)
    assert f"{path}" in message, message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in:\n{message[:3000]}"


def test_cronium_apply_exits_2_without_a_traceback_for_every_case(tmp_path, monkeypatch):
    """The real `apply` command, in this process (one import of Prefect for all cases)."""
    import typer.main
    import typer.testing

    from cronium_prefect.cli import app

    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")  # never reached
    # The runner builds the click command of the whole app on every invoke (~0.1 s): build
    # it once, so that the cases cost what `apply` costs.
    command = typer.main.get_command(app)
    monkeypatch.setattr(typer.testing, "_get_command", lambda _: command)
    runner = CliRunner()
    outcomes = {"cases": len(CASES), "exit_2": 0, "tracebacks": 0, "other": []}
    for case, path, fragments in _write_all(tmp_path):
        result = runner.invoke(app, ["apply", str(path)])
        crashed = result.exception is not None and not isinstance(result.exception, SystemExit)
        traceback = crashed or "Traceback" in result.output
        outcomes["tracebacks"] += traceback
        clear = REFUSED in result.output and str(path) in result.output
        clear = clear and all(f in result.output for f in fragments)
        if result.exit_code == 2 and not traceback and clear:
            outcomes["exit_2"] += 1
        else:
            outcomes["other"].append(
                (case, result.exit_code, repr(result.exception), result.output[-500:])
            )
    report("fuzzed_workflows_apply", {**outcomes, "other": len(outcomes["other"])})
    assert outcomes["exit_2"] == len(CASES) and outcomes["tracebacks"] == 0, outcomes["other"][:5]


def _cronium(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PREFECT_API_URL": "http://127.0.0.1:9/api"}
    return subprocess.Popen(
        [*CLI, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


def test_the_real_command_line_refuses_them_all_in_one_process(tmp_path):
    """`cronium apply` in its own process, every case in one call: one message per file,
    exit 2, no traceback; and a few cases alone, each its own process, at once."""
    written = _write_all(tmp_path)
    sample = random.Random(SEED).sample(written, 3)
    batch = _cronium("apply", *(str(p) for _, p, _ in written))
    alone = [(case, path, _cronium("apply", str(path))) for case, path, _ in sample]
    out, errors = batch.communicate(timeout=120)
    assert batch.returncode == 2, errors[-3000:]
    assert "Traceback" not in out + errors, errors[-3000:]
    assert errors.startswith(f"error: {REFUSED}"), errors[:500]
    missing = [case for case, path, _ in written if f"{path}" not in errors]
    assert not missing, missing
    for case, path, process in alone:
        out, errors = process.communicate(timeout=120)
        assert process.returncode == 2, (case, errors[-2000:])
        assert "Traceback" not in out + errors, (case, errors[-2000:])
        assert REFUSED in errors and str(path) in errors, (case, errors[-2000:])


@pytest.mark.parametrize(("case", "raw"), KNOWN_CRASHES, ids=[c[0] for c in KNOWN_CRASHES])
def test_known_crashes_exit_2_without_a_traceback(tmp_path, case, raw):
    from cronium_prefect.cli import app

    path = tmp_path / f"{case}.yaml"
    path.write_bytes(raw)
    result = CliRunner().invoke(app, ["apply", str(path)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 2 and "steps[1].run.tags" in result.output


@pytest.mark.parametrize(("case", "template"), KNOWN_GAPS, ids=[c[0] for c in KNOWN_GAPS])
def test_templates_that_cannot_compile_are_refused_at_apply(tmp_path, case, template):
    path = tmp_path / f"{case}.yaml"
    path.write_bytes(_doc(_with_step(3, input=template)))
    with pytest.raises(InvalidEvent, match=r"steps\[3\]\.input"):
        load_definitions([path], references=False)


@pytest.mark.skipif(documents._Yaml12CLoader is None, reason="PyYAML built without libyaml")
def test_a_wide_document_over_the_node_budget_is_refused_before_it_is_built(tmp_path, monkeypatch):
    path = tmp_path / "wide.yaml"
    values = ", ".join(["0"] * 100_500)
    path.write_text(
        f"kind: workflow\nname: fzw\nsteps:\n  - name: a\n    event: e\n    input: [{values}]\n"
    )
    built = []
    compose = documents._compose
    monkeypatch.setattr(documents, "_compose", lambda *a: built.append(1) or compose(*a))
    with pytest.raises(InvalidEvent, match="document too large"):
        load_definitions([path], references=False)
    assert built == []  # refused while counting values: no node of it was made
