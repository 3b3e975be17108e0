"""Following a flow run from another process: its logs as they arrive, and its record."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from uuid import UUID

import anyio
from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.client.schemas.sorting import LogSort

__all__ = ["follow_logs", "read_record", "record_from_markdown"]

_RECORD = "## Record\n\n```json\n"


async def follow_logs(
    client: PrefectClient,
    flow_run_id: UUID,
    emit: Callable[[Any], None],
    follow: bool,
    poll_s: float = 0.5,
) -> Any:
    """Emit every log of the run in order; with `follow`, keep going until the run has
    ended and its last logs have arrived. Returns the run's final flow run object."""
    offset, quiet_after_end = 0, 0
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
                emit(log)
            offset += len(page)
            if len(page) < 200:
                break
        if not follow:
            return run
        if run.state is not None and run.state.is_final():
            # Logs are shipped in batches: stop once the flow's last line is in, or after
            # a few quiet polls.
            quiet_after_end += 1
            if quiet_after_end > 6:
                return run
        await anyio.sleep(poll_s)


async def read_record(client: PrefectClient, flow_run_id: UUID) -> dict[str, Any] | None:
    """The run record from the run's Cronium artifact (readable from any process)."""
    artifacts = await client.read_artifacts(
        artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
    )
    for artifact in artifacts:
        record = record_from_markdown(artifact.data)
        if record is not None:
            return record
    return None


def record_from_markdown(data: Any) -> dict[str, Any] | None:
    """The run record inside a run artifact's markdown (flows/report.py), if it is one."""
    text = data if isinstance(data, str) else ""
    if _RECORD not in text:
        return None
    return json.loads(text.split(_RECORD, 1)[1].rsplit("\n```", 1)[0])
