"""Deciding, as a workflow run goes, which steps start and which never will.

Pure: it reads the steps' records and says what to do; flows/workflow_flow.py starts the
runs and writes the records. The rules (docs/workflows.md):

- A need holds when its step ended as it asks: `success` (the default), `failure`,
  `always` (ended, however), `condition` (succeeded with the condition set).
- `join: all` starts a step once every need holds and skips it once one cannot;
  `join: any` starts it once one holds and skips it once none can.
- After a failure under `fail_fast`, only steps with a `failure` or `always` need that
  holds still start (failure branches, cleanup); the others never start. After a cancel
  or a timeout nothing starts.
"""

from __future__ import annotations

from dataclasses import dataclass

from .record import RunStatus, StepRecord, StepStatus, WorkflowRecord
from .workflow import Need, Step, When, Workflow

__all__ = ["Plan", "Decision", "final_status"]

_HANDLERS = (When.failure, When.always)


@dataclass(frozen=True)
class Decision:
    step: Step
    status: StepStatus  # RUNNING: start it; SKIPPED or NOT_STARTED: it never runs
    reason: str = ""


class Plan:
    def __init__(self, workflow: Workflow, record: WorkflowRecord):
        self.workflow = workflow
        self.record = record
        self.failed = False  # a step failed: under fail_fast, only handlers start
        self.halted = False  # cancelled or timed out: nothing starts

    def decide(self) -> list[Decision]:
        """What to do now with each pending step whose fate is known. Call again after
        applying them: a skipped step can decide its dependents'."""
        stopping = self.halted or (self.failed and self.workflow.on_failure == "fail_fast")
        decisions = []
        for step in self.workflow.steps:
            if self.record.step(step.name).status != StepStatus.PENDING:
                continue
            if self.halted:
                decisions.append(Decision(step, StepStatus.NOT_STARTED, "the workflow stopped"))
                continue
            ready, dead, reason = self._readiness(step)
            if stopping and (ready or dead):
                if ready and any(n.on in _HANDLERS and self._holds(n) for n in step.needs):
                    decisions.append(Decision(step, StepStatus.RUNNING))
                else:
                    decisions.append(
                        Decision(step, StepStatus.NOT_STARTED, "a step failed (fail_fast)")
                    )
            elif dead:
                decisions.append(Decision(step, StepStatus.SKIPPED, reason))
            elif ready:
                decisions.append(Decision(step, StepStatus.RUNNING))
        return decisions

    def _readiness(self, step: Step) -> tuple[bool, bool, str]:
        if not step.needs:
            return True, False, ""
        holds = [self._holds(n) for n in step.needs]
        never = [self._never(n) for n in step.needs]
        if step.join == "all":
            blocked = next((n for n, x in zip(step.needs, never, strict=True) if x), None)
            reason = f"needs {blocked.step} on {blocked.on.value}" if blocked else ""
            return all(holds), blocked is not None, self._why(reason, blocked)
        reason = "needs any of " + ", ".join(f"{n.step} on {n.on.value}" for n in step.needs)
        return any(holds), all(never), reason

    def _why(self, reason: str, need: Need | None) -> str:
        if need is None:
            return reason
        return f"{reason}; it ended {self.record.step(need.step).status.value}"

    def _holds(self, need: Need) -> bool:
        upstream = self.record.step(need.step)
        if need.on == When.always:
            return upstream.status.ended
        if need.on == When.failure:
            return upstream.status == StepStatus.FAILURE
        if need.on == When.condition:
            return upstream.status == StepStatus.SUCCESS and upstream.condition
        return upstream.status == StepStatus.SUCCESS

    def _never(self, need: Need) -> bool:
        return self.record.step(need.step).status.ended and not self._holds(need)

    @property
    def done(self) -> bool:
        return all(s.status.ended for s in self.record.steps)


def final_status(workflow: Workflow, steps: list[StepRecord]) -> RunStatus:
    """SUCCESS when every step that should have run succeeded; else FAILURE, or PARTIAL
    under `continue` when some step did succeed."""
    if not any(s.status.fell_short for s in steps):
        return RunStatus.SUCCESS
    if workflow.on_failure == "continue" and any(s.status == StepStatus.SUCCESS for s in steps):
        return RunStatus.PARTIAL
    return RunStatus.FAILURE
