"""A run's artifacts: the record as JSON for programs, a markdown summary for people, and
reading the record back from any process."""

from __future__ import annotations

import json
import logging
from typing import Any
from uuid import UUID

from prefect.artifacts import Artifact
from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterType,
)
from prefect.client.schemas.sorting import ArtifactSort

from cronium_prefect.caps import json_size
from cronium_prefect.names import RECORD_ARTIFACT_TYPE
from cronium_prefect.record import RunRecord, WorkflowRecord

__all__ = [
    "publish_run_artifacts",
    "render_markdown",
    "read_record",
    "record_from_artifact",
    "RECORD_TYPES",
]

_log = logging.getLogger("cronium.records")
_PREVIEW_CHARS = 20_000
# Runs made before the record had an artifact of its own kept it in the markdown summary,
# under this heading; they are still read.
_LEGACY_RECORD = "## Record\n\n```json\n"
RECORD_TYPES = [RECORD_ARTIFACT_TYPE, "markdown"]  # the artifact types a record is read from
RECORD_BYTES = 16 * 1024 * 1024  # the record artifact's cap (many servers, 1 MiB output each)


def render_markdown(record: RunRecord) -> str:
    rows = [
        ("Status", record.status.value),
        ("Exit code", record.exit_code),
        ("Trigger", record.trigger.value),
        ("Started", record.start_time),
        ("Ended", record.end_time),
        ("Duration", f"{record.duration_s:.3f} s"),
        ("Setup", f"{record.setup_s:.3f} s"),
        ("Execution", f"{record.execution_s:.3f} s"),
        ("Attempts", record.attempts),
        ("Condition", record.condition),
        ("Log lines", record.log_lines),
        ("Servers", ", ".join(s.name for s in record.servers)),
    ]
    if record.error:
        rows.append(("Error", record.error.replace("|", "\\|").replace("\n", " ")))
    table = "\n".join(f"| {key} | {value} |" for key, value in rows)
    output = json.dumps(record.output, indent=2, ensure_ascii=False)
    if len(output) > _PREVIEW_CHARS:
        output = (
            output[:_PREVIEW_CHARS] + f"\n... ({len(output)} characters in all: the "
            "artifact's data holds the full output)"
        )
    return (
        f"# {record.event}: {record.status.value}\n\n| Field | Value |\n|---|---|\n{table}\n\n"
        f"## Output\n\n```json\n{output}\n```\n"
    )


async def publish_run_artifacts(record: RunRecord) -> None:
    """The run's one artifact: the record as JSON for programs, its markdown summary (the
    description, which Prefect's UI renders above the data) for people. One API call: it
    was two, a markdown artifact and the record beside it. Without a key: Prefect copies a
    keyed artifact's data into its collection, a second copy of a record of up to
    RECORD_BYTES, and an event's runs are listed by its deployment anyway."""
    await Artifact(
        type=RECORD_ARTIFACT_TYPE, data=_within_limit(record), description=render_markdown(record)
    ).acreate()


def _within_limit(record: RunRecord) -> dict[str, Any]:
    """The record's JSON, at most RECORD_BYTES: past it, each server's output is left out
    (the record's output holds them all: the one server's, or a map by server), then, as a
    last resort, the output itself, saying so."""
    data = record.to_json()
    if json_size(data) <= RECORD_BYTES:
        return data
    for server in data["servers"]:
        server["output"] = "(left out here: the record's output holds it)"
    size = json_size(data)
    if size > RECORD_BYTES:
        data["output"] = (
            f"(left out: the record was {size} bytes of JSON, over its limit of "
            f"{RECORD_BYTES}; each server's status and error are below)"
        )
    return data


def record_from_artifact(type: str | None, data: Any) -> RunRecord | None:
    """The record an artifact holds (its type and data as the API returns them), if any;
    None for one this version cannot read (a trigger or status of a newer version, or
    data edited by hand): one such run must not take a page or a command down."""
    try:
        if type == RECORD_ARTIFACT_TYPE:
            data = json.loads(data) if isinstance(data, str) else data
            return (WorkflowRecord if "steps" in data else RunRecord).from_json(data)
        if type == "markdown" and isinstance(data, str) and _LEGACY_RECORD in data:
            return RunRecord.from_json(
                json.loads(data.split(_LEGACY_RECORD, 1)[1].rsplit("\n```", 1)[0])
            )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        _log.warning("a run record this version cannot read: %s", exc)
    return None


async def read_record(client: PrefectClient, flow_run_id: UUID) -> RunRecord | None:
    """The run's record, from whichever process (None: the run left none yet)."""
    artifacts = await client.read_artifacts(
        artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]),
            type=ArtifactFilterType(any_=RECORD_TYPES),
        ),
        sort=ArtifactSort.CREATED_DESC,  # a run started again after a crash has two
    )
    records = [(a.type, record_from_artifact(a.type, a.data)) for a in artifacts]
    # The newest JSON artifact; a legacy summary's record only when there is none.
    return next((r for t, r in records if r and t == RECORD_ARTIFACT_TYPE), None) or next(
        (r for _, r in records if r), None
    )
