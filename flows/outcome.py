"""From per-target attempt results to the run record (SPEC §3).

One target: the record is that target's result. Several servers: SUCCESS when all
succeeded, PARTIAL when some did, FAILURE when none did (TIMEOUT when every one timed
out). The output is a map from server name to the output it set; the condition holds
when any server set it; every server's own exit code, output and condition are kept.
"""

from __future__ import annotations

from cronium_prefect.executors.base import ExecutionResult
from cronium_prefect.record import RunRecord, RunStatus, ServerResult

__all__ = ["fill_record"]


def _overall(results: dict[str, ExecutionResult]) -> RunStatus:
    statuses = [RunStatus(r.status) for r in results.values()]
    if len(statuses) == 1:
        return statuses[0]
    if all(s == RunStatus.SUCCESS for s in statuses):
        return RunStatus.SUCCESS
    if any(s == RunStatus.SUCCESS for s in statuses):
        return RunStatus.PARTIAL
    if all(s == RunStatus.TIMEOUT for s in statuses):
        return RunStatus.TIMEOUT
    return RunStatus.FAILURE


def fill_record(record: RunRecord, results: dict[str, ExecutionResult], single: bool) -> None:
    """`results` in target order; `single`: one target, whose output is the run's output."""
    record.status = _overall(results)
    record.servers = [
        ServerResult(
            name,
            RunStatus(r.status),
            r.exit_code,
            r.error,
            r.collected.output,
            r.collected.condition,
        )
        for name, r in results.items()
    ]
    failed = {name: r for name, r in results.items() if not r.succeeded}
    codes = [r.exit_code for r in failed.values() if r.exit_code not in (None, 0)]
    if single:
        (only,) = results.values()
        record.exit_code, record.error = only.exit_code, only.error
        record.output = only.collected.output
    else:
        known = [r.exit_code for r in results.values() if r.exit_code is not None]
        record.exit_code = codes[0] if codes else (0 if known and not failed else None)
        record.error = "; ".join(f"{name}: {r.error}" for name, r in failed.items()) or None
        record.output = {
            name: r.collected.output for name, r in results.items() if r.collected.has_output
        }
    record.condition = any(r.collected.condition for r in results.values())
    record.setup_s = round(max(r.setup_s for r in results.values()), 3)
    record.execution_s = round(max(r.execution_s for r in results.values()), 3)
    record.log_lines = sum(r.lines for r in results.values())
    record.variables_written = sorted({k for r in results.values() for k in r.collected.variables})
