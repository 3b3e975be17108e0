"""Cronium runtime helpers for Python scripts: `import cronium`.

Standard library only. Everything goes through files in the run's directory
($CRONIUM_DIR, /cronium in containers), so it works without network access.
Both the camelCase names of the original Cronium and snake_case aliases are provided.
"""

import json
import os
import re

__all__ = [
    "CroniumError", "input", "output", "getVariable", "setVariable", "setCondition", "event",
    "get_variable", "set_variable", "set_condition",
]

_DIR = os.environ.get("CRONIUM_DIR", "/cronium")
_OUTPUT_LIMIT = int(os.environ.get("CRONIUM_OUTPUT_LIMIT", str(1024 * 1024)))
_VALUE_LIMIT = 10000
_KEY = re.compile(r"^[A-Z_][A-Z0-9_]*$")
_RESERVED = ("CRONIUM_", "PREFECT_")


class CroniumError(Exception):
    """A helper was called with something it cannot accept."""


def _path(*parts):
    return os.path.join(_DIR, *parts)


def _read_json(*parts):
    try:
        with open(_path(*parts), encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        return None


def _dumps(value, where):
    try:
        return json.dumps(value, allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise CroniumError(
            "%s: value of type %s is not JSON-serialisable (%s)" % (where, type(value).__name__, exc)
        ) from None


def _write(text, *parts):
    target = _path(*parts)
    temporary = "%s.%d.tmp" % (target, os.getpid())
    with open(temporary, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(temporary, target)


def _check_key(key, where):
    if not isinstance(key, str) or not _KEY.match(key):
        raise CroniumError(
            "%s: variable key %r must match [A-Z_][A-Z0-9_]* (upper case, digits, _)" % (where, key)
        )
    if key.startswith(_RESERVED):
        raise CroniumError("%s: variable key %r uses a reserved prefix (CRONIUM_, PREFECT_)"
                           % (where, key))


def input():  # noqa: A001 - the original Cronium name
    """The run's input: the previous event's output, or the input given to the run."""
    return _read_json("in", "input.json")


def output(data):
    """Set the run's output (any JSON value); the next event in a chain receives it."""
    text = _dumps(data, "cronium.output()")
    size = len(text.encode("utf-8"))
    if size > _OUTPUT_LIMIT:
        raise CroniumError("cronium.output(): output is %d bytes, over the limit of %d bytes"
                           % (size, _OUTPUT_LIMIT))
    _write(text, "out", "output.json")


def getVariable(key):
    """A variable's value (the event owner's scope first, then global); None if unset."""
    _check_key(key, "cronium.getVariable()")
    written = _path("out", "vars", key + ".json")
    if os.path.exists(written):
        return _read_json("out", "vars", key + ".json")
    return (_read_json("in", "variables.json") or {}).get(key)


def setVariable(key, value):
    """Set a variable (owner scope when the event has an owner); saved when the run ends."""
    where = "cronium.setVariable(%r)" % (key,)
    _check_key(key, where)
    text = _dumps(value, where)
    if len(text) > _VALUE_LIMIT:
        raise CroniumError("%s: value is %d characters of JSON, over the limit of %d"
                           % (where, len(text), _VALUE_LIMIT))
    _write(text, "out", "vars", key + ".json")


def setCondition(value):
    """Set the condition that `on: condition` actions test."""
    if not isinstance(value, bool):
        raise CroniumError("cronium.setCondition(): expected True or False, got %r" % (value,))
    _write("true" if value else "false", "out", "condition")


def event():
    """Metadata of this run: id, name, type, run_id, trigger, server, owner, tags, ..."""
    return _read_json("in", "event.json")


get_variable = getVariable
set_variable = setVariable
set_condition = setCondition
