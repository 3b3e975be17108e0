"""The flow's parameters as deployments carry them: the schema Prefect's UI builds its
custom-run form from.

Prefect keeps this schema in every deployment and returns it in every listing. The one it
derives from the flow's signature spells out the whole Event model: ~7.6 KB, ~85% of each
deployment as the API returns it (86 MB to list 10,000 events). Here `event` is edited as
JSON instead. A test keeps the names and positions in step with `cronium_event`'s
signature.
"""

from __future__ import annotations

from typing import Any

from cronium_prefect.names import Trigger

__all__ = ["PARAMETER_SCHEMA", "WORKFLOW_PARAMETER_SCHEMA"]

PARAMETER_SCHEMA: dict[str, Any] = {
    "title": "Parameters",
    "type": "object",
    "properties": {
        "event": {
            "title": "event",
            "position": 0,
            "description": "The event's definition (as `cronium apply` wrote it) or the "
            "name of a deployed event.",
        },
        "input": {
            "title": "input",
            "position": 1,
            "default": None,
            "description": "Any JSON value; the script reads it as its input.",
        },
        "trigger": {
            "title": "trigger",
            "position": 2,
            "default": None,
            "anyOf": [{"enum": [t.value for t in Trigger]}, {"type": "null"}],
        },
        "chain": {
            "title": "chain",
            "position": 3,
            "default": None,
            "anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "null"}],
        },
    },
    "required": ["event"],
}

# The cronium-workflow flow's (flows/workflow_flow.py), for the same reasons.
WORKFLOW_PARAMETER_SCHEMA: dict[str, Any] = {
    "title": "Parameters",
    "type": "object",
    "properties": {
        "workflow": {
            "title": "workflow",
            "position": 0,
            "description": "The workflow's definition (as `cronium apply` wrote it) or the "
            "name of a deployed workflow.",
        },
        "input": {
            "title": "input",
            "position": 1,
            "default": None,
            "description": "Any JSON value; the first steps' input, and `input` in templates.",
        },
        "trigger": PARAMETER_SCHEMA["properties"]["trigger"] | {"position": 2},
        "retry_of": {
            "title": "retry_of",
            "position": 3,
            "default": None,
            "description": "A run of this workflow whose succeeded steps are reused.",
            "anyOf": [{"type": "string"}, {"type": "null"}],
        },
    },
    "required": ["workflow"],
}
