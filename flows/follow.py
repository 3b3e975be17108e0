"""Following a flow run from another process: its logs as they arrive."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from uuid import UUID

import anyio
from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
from prefect.client.schemas.sorting import LogSort

from cronium_prefect.names import SCRIPT_LINE
from cronium_prefect.prefect_adapter import ENGINE_LAST_LINE
from cronium_prefect.record import RunRecord

from .report import read_record

__all__ = ["follow_logs"]


FINISHED = ENGINE_LAST_LINE  # once it is in, every line of the run is
# How long a follower waits, after the run has ended without that line (a crash, a
# cancellation, a worker gone), for lines still on their way.
GRACE_SECONDS = 5.0


async def follow_logs(
    client: PrefectClient,
    flow_run_id: UUID,
    emit: Callable[[Any], None],
    follow: bool,
    poll_s: float = 0.2,
    warn: Callable[[str], None] = lambda message: None,
) -> Any:
    """Emit every log of the run in order (each once); with `follow`, keep going until the
    run has ended and its last line is in. Returns the run's final flow run object.

    A script run whose flow logs nothing after its script (no actions, no max_executions)
    ends with its record (written before the final state), which counts the script's
    lines: once the run is final and they have all arrived, the follower stops, without
    waiting for Prefect's closing line, which ships ~0.5 s later. Otherwise it stops at
    that line, or GRACE_SECONDS after the run ended without it; then, if the record counts
    more script lines than arrived, `warn` says how many are missing (`cronium logs` shows
    them once they arrive).
    """
    offset, seen_script_lines, last_line_in, ended = 0, 0, False, None
    emitted: set[Any] = set()  # offset paging by timestamp can return a line twice
    record: RunRecord | None = None
    while True:
        run = await client.read_flow_run(flow_run_id)
        while True:
            page = await client.read_logs(
                log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])),
                sort=LogSort.TIMESTAMP_ASC,
                limit=200,
                offset=offset,
            )
            for log in page:
                if log.id in emitted:
                    continue
                emitted.add(log.id)
                emit(log)
                # The flow's own closing line; its tasks log one too, mid-run.
                if log.task_run_id is None and log.message.startswith(FINISHED):
                    last_line_in = True
                seen_script_lines += bool(SCRIPT_LINE.match(log.message))
            offset += len(page)
            if len(page) < 200:
                break
        if not follow:
            return run
        if run.state is not None and run.state.is_final():
            if last_line_in:
                return run
            record = record or await read_record(client, flow_run_id)
            if record and _script_lines_are_last(run, record):
                if seen_script_lines >= record.log_lines:
                    return run
            ended = ended or time.monotonic()
            if time.monotonic() - ended >= GRACE_SECONDS:
                missing = (record.log_lines if record else 0) - seen_script_lines
                if missing > 0:
                    warn(
                        f"{missing} of the run's script lines had not arrived "
                        f"{GRACE_SECONDS:g} s after it ended (`cronium logs {flow_run_id}` "
                        "shows them once they do)"
                    )
                return run
        await anyio.sleep(poll_s)


_SCRIPT_TYPES = {"bash", "python", "node"}


def _script_lines_are_last(run: Any, record: RunRecord) -> bool:
    """Whether the record's line count is every line the run logs that matters: one
    execution (no retry, no restart after a crash) of a script event whose flow logs
    nothing after it (no actions, no max_executions)."""
    event = (run.parameters or {}).get("event")
    return (
        isinstance(event, dict)
        and event.get("type") in _SCRIPT_TYPES
        and not event.get("actions")
        and not event.get("max_executions")
        and record.attempts == 1
        and (run.run_count or 0) <= 1
    )
