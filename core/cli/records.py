"""Showing runs: log lines as they come, and a run's record (an event's or a workflow's),
for `run`, `trigger`, `logs` and `retry`."""

from __future__ import annotations

import json
from typing import Any

import typer

from cronium_prefect.record import RunRecord, RunStatus, WorkflowRecord

from .common import EXIT_FAILED, err, fail, out, print_json

__all__ = ["print_log", "warn", "follow_run", "exit_with_record", "print_record"]


def print_log(log: Any) -> None:
    stamp = log.timestamp.strftime("%H:%M:%S.%f")[:-3]
    out.print(f"{stamp} {log.message}", highlight=False, markup=False, soft_wrap=True)


def warn(message: str) -> None:
    err.print(f"warning: {message}", highlight=False, soft_wrap=True)


async def follow_run(client: Any, run_id: Any, as_json: bool) -> tuple[Any, RunRecord | None]:
    """Print the run's log as it comes (to stderr with --json); its end and record."""
    from cronium_prefect.flows.follow import follow_logs
    from cronium_prefect.flows.report import read_record

    run = await follow_logs(
        client,
        run_id,
        print_log if not as_json else lambda log: err.print(log.message, markup=False),
        follow=True,
        warn=warn,
    )
    return run, await read_record(client, run.id)


def exit_with_record(run: Any, record: RunRecord | None, as_json: bool) -> None:
    if record is None:
        raise fail(f"the run ended in {run.state.name if run.state else '?'} without a record")
    print_record(record, as_json)
    raise typer.Exit(0 if record.status.ok else EXIT_FAILED)


def print_record(record: RunRecord, as_json: bool) -> None:
    if as_json:
        summary = {
            "event": record.event,
            "run_id": record.run_id,
            "status": record.status.value,
            "exit_code": record.exit_code,
            "output": record.output,
            "condition": record.condition,
            "duration_s": record.duration_s,
            "error": record.error,
            "trigger": record.trigger.value,
            "webhook": record.webhook,
        }
        summary["servers"] = [
            {"name": s.name, "status": s.status.value, "exit_code": s.exit_code}
            for s in record.servers
        ]
        if isinstance(record, WorkflowRecord):
            summary["workflow"] = summary.pop("event")
            summary["steps"] = [s.to_json() for s in record.steps]
        print_json(summary)
        return
    if isinstance(record, WorkflowRecord):
        _print_workflow_record(record)
        return
    colour = {RunStatus.SUCCESS: "green", RunStatus.PARTIAL: "yellow"}.get(record.status, "red")
    out.print(
        f"[bold {colour}]{record.status.value}[/] {record.event}  exit code "
        f"{record.exit_code}  {record.duration_s:.2f} s (setup {record.setup_s:.2f} s, "
        f"execution {record.execution_s:.2f} s)",
        highlight=False,
    )
    _print_error_and_output(record)
    out.print(f"condition: {json.dumps(record.condition)}", highlight=False)
    out.print(f"run id: {record.run_id}", style="dim", highlight=False)


def _print_workflow_record(record: WorkflowRecord) -> None:
    colour = {RunStatus.SUCCESS: "green", RunStatus.PARTIAL: "yellow"}.get(record.status, "red")
    out.print(
        f"[bold {colour}]{record.status.value}[/] workflow {record.event}  "
        f"{record.duration_s:.2f} s",
        highlight=False,
    )
    width = max(len(s.name) for s in record.steps) if record.steps else 4
    for step in record.steps:
        runs = f"{len(step.run_ids)} runs" if step.items is not None else "1 run"
        detail = "reused" if step.reused_from else (runs if step.run_ids else "")
        out.print(
            f"  {step.name.ljust(width)}  {step.status.value:<11}  {step.duration_s:7.2f} s  "
            f"{detail}",
            highlight=False,
            markup=False,
        )
        if step.error and step.status.value in ("FAILURE", "CANCELLED"):
            out.print(f"  {''.ljust(width)}  {step.error}", highlight=False, markup=False)
    _print_error_and_output(record)
    out.print(f"run id: {record.run_id}", style="dim", highlight=False)


def _print_error_and_output(record: RunRecord) -> None:
    if record.error:
        out.print(f"error: {record.error}", highlight=False, markup=False)
    out.print(
        "output:",
        json.dumps(record.output, indent=2, ensure_ascii=False),
        highlight=False,
        markup=False,
    )
