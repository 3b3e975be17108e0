"""Generated invalid event definitions: every field given wrong types and bad values,
unknown keys and typos, bad cron and durations, huge values, broken encodings, YAML bombs
and deep nesting, duplicates. Each case is (id, file bytes, what the error must name)."""

from __future__ import annotations

import json
from typing import Any

BASE: dict[str, Any] = {
    "name": "fz",
    "type": "bash",
    "script": "echo hi",
    "status": "active",
    "schedule": {"cron": "0 * * * *"},
    "timeout": "5m",
    "retries": 1,
    "max_executions": 0,
    "priority": "normal",
    "overlap": "skip",
    "env": {"A": "1"},
    "tags": ["t"],
    "owner": "ana",
    "resources": {"memory": "64m", "cpus": 0.5, "pids": 64, "network": "none"},
    "actions": [{"on": "success", "run_event": "fz-next"}],
}

# Values of the wrong kind for each field (none of them coerces to a valid value).
WRONG: dict[str, list[Any]] = {
    "name": [123, True, ["fz"], {"a": 1}, "Bad Name", "-lead", "a" * 101, ""],
    "description": [123, ["d"], {"d": 1}, "d" * 501],
    "type": ["ruby", 1, ["bash"], "BASH"],
    "script": [123, ["echo"], {"a": 1}],
    "status": ["running", 1, True, ["active"]],
    "schedule": ["hourly", 5, ["0 * * * *"], {}],
    "timeout": ["forever", "-5m", 0, -1, "5 parsecs", [5], {"m": 5}, 10**12],
    "retries": [-1, 11, "many", 1.5, [1], True],
    "max_executions": [-1, "ten", 2.5, [1], False],
    "priority": ["urgent", 1, ["high"]],
    "overlap": ["wait", 0, True],
    "run_location": ["cloud", 1, ["local"]],
    "servers": ["web-1", 5, {"web": 1}],
    "image": [5, ["debian"], "", {"i": 1}],
    "resources": ["big", 5, ["64m"]],
    "env": ["A=1", ["A"], 5, {"1BAD": "x"}, {"A": ["list"]}, {"A": {"n": 1}}, {"CRONIUM_X": "1"}],
    "tags": ["t", 5, {"t": 1}, [""], [5], ["x" * 101]],
    "owner": [5, ["ana"], "has space", "x" * 101],
    "actions": ["notify", 5, {"on": "success"}, [5], ["success"]],
}

NESTED_WRONG: dict[str, dict[str, list[Any]]] = {
    "schedule": {
        "cron": ["61 * * * *", "* * *", "every minute", 5, ["0 * * * *"], "*/0 * * * *"],
        "interval": ["0s", "-1m", "soon", [60], "1 fortnight"],
        "timezone": ["Mars/Olympus", 5, "UTC+25"],
        "start_time": ["yesterday", 5, "2026-13-40T00:00:00"],
    },
    "resources": {
        "memory": ["lots", "1m", -5, "5t", [64]],
        "cpus": [0, -1, 1000, "half", True],
        "pids": [1, 0, "many", 10**9, True, "64"],
        "network": ["host", "container:x", 1],
    },
}

ACTIONS: list[tuple[str, Any]] = [
    ("unknown trigger", {"on": "sometimes", "run_event": "x"}),
    ("empty any", {"on": {"any": []}, "run_event": "x"}),
    ("two ops", {"on": {"any": ["success"], "all": ["failure"]}, "run_event": "x"}),
    ("nested bad", {"on": {"all": ["success", "maybe"]}, "run_event": "x"}),
    ("no on", {"run_event": "x"}),
    ("no action", {"on": "success"}),
    (
        "both actions",
        {"on": "success", "run_event": "x", "send_message": {"block": "b", "message": "m"}},
    ),
    ("bad target", {"on": "success", "run_event": "Not A Name"}),
    ("message no block", {"on": "success", "send_message": {"message": "m"}}),
    ("message empty", {"on": "success", "send_message": {"block": "b", "message": ""}}),
    (
        "message unknown key",
        {"on": "success", "send_message": {"block": "b", "message": "m", "to": "x"}},
    ),
    ("bad delay", {"on": "success", "run_event": "x", "delay": "later"}),
    ("negative delay", {"on": "success", "run_event": "x", "delay": "-5s"}),
    ("unknown action key", {"on": "success", "run_event": "x", "retry": 3}),
]

HTTP: list[tuple[str, Any]] = [
    ("bad method", {"method": "FETCH", "url": "http://x"}),
    ("no url", {"method": "GET"}),
    ("empty url", {"method": "GET", "url": ""}),
    ("status 99", {"method": "GET", "url": "http://x", "expect_status": [99]}),
    ("status 600", {"method": "GET", "url": "http://x", "expect_status": [600]}),
    ("header list", {"method": "GET", "url": "http://x", "headers": ["A: b"]}),
    ("header number", {"method": "GET", "url": "http://x", "headers": {"A": {"b": 1}}}),
    ("bad timeout", {"method": "GET", "url": "http://x", "timeout": "a while"}),
    ("unknown key", {"method": "GET", "url": "http://x", "verify": False}),
]

TYPOS = [
    "nmae",
    "tpye",
    "scirpt",
    "schedul",
    "timout",
    "retry",
    "tag",
    "enviroment",
    "server",
    "actoins",
    "prority",
    "onwer",
    "max_execution",
    "overlaps",
    "resource",
    "Name",
    "TYPE",
    "script_path",
    "cron",
    "interval",
    "run-location",
    "image_name",
]


def _doc(data: dict[str, Any]) -> bytes:
    # JSON is YAML: the loader reads it with the YAML 1.2 rules and keeps line numbers.
    return json.dumps(data, indent=1).encode()


def cases() -> list[tuple[str, bytes, list[str]]]:
    found: list[tuple[str, bytes, list[str]]] = []
    for field, values in WRONG.items():
        for i, value in enumerate(values):
            found.append((f"{field}-wrong-{i}", _doc({**BASE, field: value}), [field]))
    for section, fields in NESTED_WRONG.items():
        for field, values in fields.items():
            for i, value in enumerate(values):
                body = {**BASE[section], field: value} if section in BASE else {field: value}
                if section == "schedule" and field != "cron":
                    body = {k: v for k, v in body.items() if k != "cron"}
                    if field in ("timezone", "start_time"):
                        body["interval"] = "1h"
                found.append(
                    (
                        f"{section}.{field}-bad-{i}",
                        _doc({**BASE, section: body}),
                        [f"{section}.{field}"],
                    )
                )
    for field in ("name", "type"):
        found.append(
            (f"missing-{field}", _doc({k: v for k, v in BASE.items() if k != field}), [field])
        )
    found.append(
        ("missing-script", _doc({k: v for k, v in BASE.items() if k != "script"}), ["script"])
    )
    http_base = {k: v for k, v in BASE.items() if k != "script"} | {"type": "http"}
    found.append(("http-without-section", _doc(http_base), ["http"]))
    for label, section in HTTP:
        found.append((f"http-{label}", _doc({**http_base, "http": section}), ["http"]))
    found.append(("tool-without-section", _doc(http_base | {"type": "tool"}), ["tool"]))
    found.append(
        (
            "script-on-http",
            _doc({**http_base, "http": {"method": "GET", "url": "http://x"}, "script": "x"}),
            ["script"],
        )
    )
    found.append(("remote-no-servers", _doc({**BASE, "run_location": "remote"}), ["server"]))
    found.append(("servers-on-local", _doc({**BASE, "servers": ["web-1"]}), ["servers"]))
    found.append(
        (
            "duplicate-server",
            _doc({**BASE, "run_location": "remote", "servers": ["a", "a"]}),
            ["servers"],
        )
    )
    found.append(
        (
            "cron-and-interval",
            _doc({**BASE, "schedule": {"cron": "0 * * * *", "interval": "1h"}}),
            ["schedule"],
        )
    )
    found.append(
        (
            "cron-and-start",
            _doc({**BASE, "schedule": {"cron": "0 * * * *", "start_time": "2030-01-01T00:00:00Z"}}),
            ["schedule"],
        )
    )
    for label, action in ACTIONS:
        found.append((f"action-{label}", _doc({**BASE, "actions": [action]}), ["actions"]))
    for typo in TYPOS:
        found.append((f"typo-{typo}", _doc({**BASE, typo: "x"}), [typo]))
    for section in ("schedule", "resources"):
        found.append(
            (
                f"unknown-in-{section}",
                _doc({**BASE, section: {**BASE[section], "extra": 1}}),
                ["extra"],
            )
        )
    # Not UTF-8, not text, not one mapping.
    for i, raw in enumerate(
        [
            b"\xff\xfe\x00n\x00a",
            b"name: caf\xe9\ntype: bash\nscript: x\n",
            b"\x80\x81\x82",
            b"name: a\x00\ntype: bash\nscript: x\n",
            b"\xc3\x28: x\n",
        ]
    ):
        found.append((f"encoding-{i}", raw, []))
    for i, text in enumerate(
        [
            "- a\n- b\n",
            "just text\n",
            "42\n",
            "name: [unclosed\n",
            "{a: 1\n",
            "name: fz\n  type: bash\n",
            "\t- tab\n",
            "name: fz\nname: fz2\ntype: bash\nscript: x\n",
            "?\n",
            "name: *nope\n",
            "!!python/object:os.system {}\n",
        ]
    ):
        found.append((f"shape-{i}", text.encode(), []))
    # Resource exhaustion: alias bombs, deep nesting, huge files, huge values.
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
        for p, c in zip("abcdefgh", "bcdefghi", strict=True)
    )
    found.append(("yaml-bomb", bomb.encode(), ["too large"]))
    found.append(("deep-nesting-list", (b"script: " + b"[" * 200 + b"]" * 200 + b"\n"), ["deeper"]))
    found.append(
        (
            "deep-nesting-map",
            (
                "env:\n"
                + "".join("  " * i + f"k{i}:\n" for i in range(1, 120))
                + "  " * 120
                + "v: 1\n"
            ).encode(),
            ["deeper"],
        )
    )
    found.append(
        ("huge-file", b"name: fz\ntype: bash\nscript: |\n" + b"  echo x\n" * 700_000, ["limited"])
    )
    found.append(("huge-script-line", _doc({**BASE, "script": "x" * 6_000_000}), ["limited"]))
    found.append(("huge-int", _doc({**BASE, "retries": 10**40}), ["retries"]))
    found.append(("huge-timeout", _doc({**BASE, "timeout": "99999999d"}), ["timeout"]))
    found.append(("many-tags", _doc({**BASE, "tags": ["x" * 200] * 3}), ["tags"]))
    # Duplicates: two events of one name in a file.
    two = json.dumps(BASE) + "\n---\n" + json.dumps(BASE) + "\n"
    found.append(("duplicate-name-in-file", two.encode(), ["fz"]))
    return found
