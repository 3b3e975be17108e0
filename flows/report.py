"""The run summary as a Prefect markdown artifact, readable without this project's code."""

from __future__ import annotations

import json

from prefect.artifacts import acreate_markdown_artifact

from cronium_prefect.names import run_artifact_key
from cronium_prefect.record import RunRecord

__all__ = ["publish_run_artifact", "render_markdown"]

_PREVIEW_CHARS = 20_000


def render_markdown(record: RunRecord) -> str:
    rows = [
        ("Status", record.status.value),
        ("Exit code", record.exit_code),
        ("Trigger", record.trigger),
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
        # The full output stays in the record below and in the flow's result.
        output = output[:_PREVIEW_CHARS] + f"\n... ({len(output)} characters in all)"
    record_json = json.dumps(record.to_json(), indent=2, ensure_ascii=False)
    return (
        f"# {record.event}: {record.status.value}\n\n| Field | Value |\n|---|---|\n{table}\n\n"
        f"## Output\n\n```json\n{output}\n```\n\n"
        f"## Record\n\n```json\n{record_json}\n```\n"
    )


async def publish_run_artifact(record: RunRecord) -> None:
    await acreate_markdown_artifact(
        markdown=render_markdown(record),
        key=run_artifact_key(record.event),
        description=f"Cronium run of {record.event}: {record.status.value}",
    )
