"""A run's artifacts: the record as JSON for programs, a markdown summary for people, and
reading the record back from any process."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

import anyio
from prefect.artifacts import Artifact, MarkdownArtifact
from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterType,
)

from cronium_prefect.names import RECORD_ARTIFACT_TYPE, run_artifact_key
from cronium_prefect.record import RunRecord

__all__ = [
    "publish_run_artifacts",
    "render_markdown",
    "read_record",
    "record_from_artifact",
    "RECORD_TYPES",
]

_PREVIEW_CHARS = 20_000
# Runs made before the record had an artifact of its own kept it in the markdown summary,
# under this heading; they are still read.
_LEGACY_RECORD = "## Record\n\n```json\n"
RECORD_TYPES = [RECORD_ARTIFACT_TYPE, "markdown"]  # the artifact types a record is read from


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
            output[:_PREVIEW_CHARS] + f"\n... ({len(output)} characters in all: the full "
            f"output is in this run's {RECORD_ARTIFACT_TYPE} artifact)"
        )
    return (
        f"# {record.event}: {record.status.value}\n\n| Field | Value |\n|---|---|\n{table}\n\n"
        f"## Output\n\n```json\n{output}\n```\n"
    )


async def publish_run_artifacts(record: RunRecord) -> None:
    """Both artifacts at once (each is one API call)."""
    summary = f"Cronium run of {record.event}: {record.status.value}"
    markdown = MarkdownArtifact(
        key=run_artifact_key(record.event), markdown=render_markdown(record), description=summary
    )
    data = Artifact(type=RECORD_ARTIFACT_TYPE, data=record.to_json(), description=summary)
    async with anyio.create_task_group() as group:
        group.start_soon(markdown.acreate)
        group.start_soon(data.acreate)


def record_from_artifact(type: str | None, data: Any) -> RunRecord | None:
    """The record an artifact holds (its type and data as the API returns them), if any."""
    if type == RECORD_ARTIFACT_TYPE:
        return RunRecord.from_json(json.loads(data) if isinstance(data, str) else data)
    if type == "markdown" and isinstance(data, str) and _LEGACY_RECORD in data:
        return RunRecord.from_json(
            json.loads(data.split(_LEGACY_RECORD, 1)[1].rsplit("\n```", 1)[0])
        )
    return None


async def read_record(client: PrefectClient, flow_run_id: UUID) -> RunRecord | None:
    """The run's record, from whichever process (None: the run left none yet)."""
    artifacts = await client.read_artifacts(
        artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]),
            type=ArtifactFilterType(any_=RECORD_TYPES),
        )
    )
    found = {a.type: record_from_artifact(a.type, a.data) for a in artifacts}
    # The JSON artifact; a legacy summary's record only when there is none.
    return found.get(RECORD_ARTIFACT_TYPE) or found.get("markdown")
