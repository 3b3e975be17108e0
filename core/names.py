"""Every name the project mints, defined once: what other code, tests and readers match
(flow and pool names, tags, artifact keys, event names, resource ids, the mask, the line
format). Pure: no Prefect, no I/O.
"""

from __future__ import annotations

import re
from enum import Enum

__all__ = [
    "FLOW_NAME",
    "WORKFLOW_FLOW_NAME",
    "MESSAGE_FLOW_NAME",
    "POOL_TYPE",
    "CRONIUM_TAG",
    "TYPE_TAG",
    "OWNER_TAG",
    "SERVER_TAG",
    "CHAINS_TAG",
    "ACTIVATED_TAG",
    "LIFECYCLE_TAG",
    "RETRYABLE_TAG",
    "TRIGGER_TAG",
    "WEBHOOK_TAG",
    "WORKFLOW_TAG",
    "STEP_TAG",
    "tag_value",
    "Trigger",
    "FINAL_STATE_TYPES",
    "run_artifact_key",
    "messages_artifact_key",
    "RECORD_ARTIFACT_TYPE",
    "server_resource_id",
    "SERVER_CHECKED",
    "circuit_event",
    "message_event",
    "MASK",
    "SCRIPT_LINE_FORMAT",
    "SCRIPT_LINE",
]

FLOW_NAME = "cronium-event"  # every event is a deployment of this one flow
WORKFLOW_FLOW_NAME = "cronium-workflow"  # every workflow is a deployment of this one
MESSAGE_FLOW_NAME = "cronium-message"  # an action's message, a subflow of the event's run
POOL_TYPE = "cronium"  # the work pool type `cronium worker` serves

# Deployment tags: Prefect filters deployments by tag, so facts the dashboard and apply
# filter on are tags (prefix + value).
CRONIUM_TAG = "cronium"  # every event's and workflow's deployment, so every run of one
TYPE_TAG = "cronium-type:"
OWNER_TAG = "cronium-owner:"
SERVER_TAG = "cronium-server:"
CHAINS_TAG = "cronium-runs:"  # this event's actions may start the named event
ACTIVATED_TAG = "cronium-activated:"  # when it last became active: max_executions counts from it
LIFECYCLE_TAG = "cronium-lifecycle:"  # live | draft | archived (flows/status.py)
RETRYABLE_TAG = "cronium-retryable"  # a crashed run is scheduled again (crash_detection)

# Flow run tag: how the run was started (Prefect tags scheduled runs "auto-scheduled").
TRIGGER_TAG = "cronium-trigger:"
WEBHOOK_TAG = "cronium-webhook:"  # which event's webhook started the run
WORKFLOW_TAG = "cronium-workflow:"  # a step's run: the workflow it belongs to
STEP_TAG = "cronium-step:"  # and its step


def tag_value(tags: object, prefix: str) -> str | None:
    """The value of the first tag with `prefix` (e.g. the hook of WEBHOOK_TAG), or None."""
    found = (t for t in tags or () if isinstance(t, str) and t.startswith(prefix))
    return next((t.removeprefix(prefix) for t in found), None)


class Trigger(str, Enum):
    """How a run was started (the record's `trigger`)."""

    SCHEDULE = "schedule"
    MANUAL = "manual"  # `cronium trigger`, `cronium run`, the dashboard's Run now
    ACTION = "action"  # another event's run_event action
    API = "api"  # Prefect's UI or API, or the Python API
    WEBHOOK = "webhook"  # POST /hooks/{event} on Cronium's HTTP service
    WORKFLOW = "workflow"  # a step of a workflow's run

    @property
    def tag(self) -> str:
        return f"{TRIGGER_TAG}{self.value}"


# Prefect's final state types, as the API filters them.
FINAL_STATE_TYPES = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")


# Artifact keys: the prefixes differ from the first letter on, so no event name can make
# one kind's key equal another's (`cronium-{event}` and `cronium-messages-{event}` did, for
# an event named `messages-x`).
def run_artifact_key(event: str) -> str:
    """The key of the run summaries earlier versions published (their collections remain)."""
    return f"cronium-run-{event}"


def messages_artifact_key(event: str) -> str:
    return f"cronium-msg-{event}"


# The type of a run's artifact, its record as JSON (flows/report.py): readers find it by
# type on the run, so it needs no key.
RECORD_ARTIFACT_TYPE = "cronium-record"


# Prefect events.
def server_resource_id(server: str) -> str:
    return f"cronium.server.{server}"


SERVER_CHECKED = "cronium.server.checked"


def circuit_event(state: str) -> str:
    """`cronium.server.circuit-open` or `-closed`."""
    return f"cronium.server.circuit-{state}"


def message_event(status: str) -> str:
    return f"cronium.message.{status}"


# What a secret becomes wherever it would show: logs, messages, the CLI, the dashboard.
MASK = "***"

# A script's output line in the run's log: `[stdout] text`, or `[web-1 stderr] text` when
# the event runs on several servers (logging %-style: server prefix, stream, line).
SCRIPT_LINE_FORMAT = "[%s%s] %s"
SCRIPT_LINE = re.compile(r"^\[(\S+ )?(stdout|stderr)\] ")
