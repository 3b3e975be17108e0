"""When a conditional action fires: its trigger, evaluated against the finished run.

- `success`: the run succeeded (SUCCESS).
- `failure`: it did not: FAILURE or TIMEOUT, and PARTIAL (some of its servers failed —
  whoever watches failures wants to hear about those).
- `always`: after every run that executed (SUCCESS, FAILURE, TIMEOUT, PARTIAL).
- `condition`: the script called setCondition(true) (on any server, for remote runs),
  whatever the status.
- `{all: [...]}` / `{any: [...]}`: every / at least one of the listed triggers.

A run that never executed (CANCELLED, e.g. max_executions reached) fires nothing.
"""

from __future__ import annotations

from typing import Any

from .record import RunStatus

__all__ = ["fires", "EXECUTED"]

EXECUTED = frozenset({RunStatus.SUCCESS, RunStatus.FAILURE, RunStatus.TIMEOUT, RunStatus.PARTIAL})
_FAILED = frozenset({RunStatus.FAILURE, RunStatus.TIMEOUT, RunStatus.PARTIAL})


def fires(trigger: str | dict[str, Any], status: RunStatus, condition: bool) -> bool:
    """Whether `trigger` (already validated by the event model) fires for this run."""
    if status not in EXECUTED:
        return False
    if isinstance(trigger, dict):
        ((op, items),) = trigger.items()
        results = (fires(item, status, condition) for item in items)
        return all(results) if op == "all" else any(results)
    return {
        "success": status == RunStatus.SUCCESS,
        "failure": status in _FAILED,
        "always": True,
        "condition": condition,
    }[trigger]
