"""Runs whose worker died are marked Crashed by Prefect itself, in bounded time, and
retried when their event has retries.

Prefect's flow engine sends a `prefect.flow-run.heartbeat` event while a run is going, and
its server ends a run only when told to. The `cronium` worker sends heartbeats every 30 s
(Prefect's minimum; its default is 180 s), and a Prefect automation — Prefect's own
recipe for "zombie" runs — changes a run to Crashed when, after a heartbeat or after it
started Running, nothing more is heard of it for `CRONIUM_CRASH_AFTER` seconds (default
90). Running counts too: the engine's first heartbeat leaves the worker a moment after the
run starts, through a queue, and a worker killed within that moment left its run Running
for ever (the server's own state event is never lost). It only looks at runs tagged
`cronium` (every event and workflow deployment's runs, which only `cronium` workers
execute), so other flows on the same server, whose heartbeats may be slower or absent, are
left alone.

A second automation puts a Crashed run of an event with retries (its deployment is tagged
`cronium-retryable`) back to Scheduled ("AwaitingRetry") — what Prefect's own Retry
button does — so a worker picks it up again. The flow counts the crashes in the run's
state history (those with this automation's message) against the event's retries (see
event_flow), which bounds the loop; a retry by hand spends none.
"""

from __future__ import annotations

from datetime import timedelta

from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.objects import StateType
from prefect.events.actions import ChangeFlowRunState
from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture
from prefect.exceptions import PrefectHTTPStatusError

from cronium_prefect.names import CRONIUM_TAG, RETRYABLE_TAG
from cronium_prefect.settings import get_settings

__all__ = [
    "AUTOMATION_NAME",
    "RETRY_AUTOMATION_NAME",
    "RETRY_MESSAGE",
    "HEARTBEAT_SECONDS",
    "ensure_crash_detection",
]

AUTOMATION_NAME = "cronium: mark runs crashed when their worker stops"
RETRY_AUTOMATION_NAME = "cronium: retry crashed runs of events with retries"
HEARTBEAT_SECONDS = 30  # Prefect's minimum flow-run heartbeat interval
# The retried run tells this automatic retry from one by hand by the state's message.
RETRY_MESSAGE = "It crashed and its event has retries: scheduled again."
STOPPED_MESSAGE = "the worker running it was stopped (SIGTERM or Ctrl-C); its scripts were stopped"


def _crash_automation() -> AutomationCore:
    within = get_settings().crash_after
    return AutomationCore(
        name=AUTOMATION_NAME,
        description=(
            f"A run of a Cronium event or workflow that has sent no heartbeat or state change"
            f" for {within} s after its last heartbeat, or after it started Running, lost its"
            " worker (killed, host down): mark it Crashed."
        ),
        trigger=EventTrigger(
            match={"prefect.resource.id": "prefect.flow-run.*"},
            match_related={"prefect.resource.id": f"prefect.tag.{CRONIUM_TAG}"},
            after={"prefect.flow-run.heartbeat", "prefect.flow-run.Running"},
            expect={"prefect.flow-run.*"},
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=within),
        ),
        actions=[
            ChangeFlowRunState(
                state=StateType.CRASHED,
                message=f"No heartbeat for {within} s: the worker running it stopped.",
            )
        ],
    )


def _retry_automation() -> AutomationCore:
    return AutomationCore(
        name=RETRY_AUTOMATION_NAME,
        description=(
            "A crashed run of a Cronium event with retries goes back to Scheduled, as"
            " Prefect's Retry button does; the run itself counts its crashes against the"
            " event's retries."
        ),
        trigger=EventTrigger(
            match={"prefect.resource.id": "prefect.flow-run.*"},
            match_related={"prefect.resource.id": f"prefect.tag.{RETRYABLE_TAG}"},
            expect={"prefect.flow-run.Crashed"},
            for_each={"prefect.resource.id"},
            posture=Posture.Reactive,
            threshold=1,
            within=timedelta(0),
        ),
        actions=[
            ChangeFlowRunState(
                state=StateType.SCHEDULED,
                name="AwaitingRetry",
                message=RETRY_MESSAGE,
            )
        ],
    )


async def ensure_crash_detection(client: PrefectClient) -> None:
    """Create both automations, or bring existing ones in line with the settings."""
    for wanted in (_crash_automation(), _retry_automation()):
        await _ensure(client, wanted)


async def _ensure(client: PrefectClient, wanted: AutomationCore) -> None:
    # Sorted, so that workers starting together all keep the same one.
    existing = sorted(await client.read_automations_by_name(wanted.name), key=lambda a: a.id)
    if not existing:
        await client.create_automation(wanted)
        return
    current = existing[0]
    if AutomationCore.model_validate(current.model_dump()) != wanted:
        await client.update_automation(current.id, wanted)
    for duplicate in existing[1:]:  # created by workers that started at the same moment
        try:
            await client.delete_automation(duplicate.id)
        except PrefectHTTPStatusError as exc:
            if exc.response.status_code != 404:  # another worker deleted it first
                raise
