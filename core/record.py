"""What one event run leaves behind: its status and the record SPEC §3 lists.

The record travels as JSON (the flow's result, the run's `cronium-record` artifact, the
CLI's --json) and is read back with `RunRecord.from_json`, so every reader gets the typed
record, never a dict picked apart by hand.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from enum import Enum
from typing import Any

from cronium_prefect.caps import cap_text, json_size
from cronium_prefect.names import Trigger
from cronium_prefect.variables import mask_value

__all__ = ["RunStatus", "ServerResult", "RunRecord", "StepStatus", "StepRecord", "WorkflowRecord"]


class RunStatus(str, Enum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    TIMEOUT = "TIMEOUT"
    PARTIAL = "PARTIAL"
    CANCELLED = "CANCELLED"

    @property
    def ok(self) -> bool:
        """The run did what it was asked: the CLI's exit code 0."""
        return self is RunStatus.SUCCESS


@dataclass
class ServerResult:
    name: str
    status: RunStatus
    exit_code: int | None
    error: str | None = None
    output: Any = None
    condition: bool = False

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ServerResult:
        return cls(**{**_known(cls, data), "status": RunStatus(data["status"])})


@dataclass
class RunRecord:
    """The run as a JSON document: the flow's result and the record artifact's content."""

    event: str
    run_id: str
    status: RunStatus
    trigger: Trigger
    webhook: str | None = None  # the event whose webhook started it (trigger: webhook)
    exit_code: int | None = None
    output: Any = None
    condition: bool = False
    input: Any = None
    error: str | None = None
    start_time: str = ""
    end_time: str = ""
    duration_s: float = 0.0
    setup_s: float = 0.0
    execution_s: float = 0.0
    attempts: int = 1
    log_lines: int = 0
    variables_written: list[str] = field(default_factory=list)
    servers: list[ServerResult] = field(default_factory=list)

    def make_safe(self, secrets: Sequence[str]) -> None:
        """Before the record is stored, shown or passed on: mask every secret text in what
        the run returned (input, output, errors, each server's output), and cut the error
        texts at ERROR_CHARS (the run's error is also its state's message)."""
        self.input = mask_value(self.input, secrets)
        self.output = mask_value(self.output, secrets)
        self.error = mask_value(self.error, secrets)
        for server in self.servers:
            server.output = mask_value(server.output, secrets)
            server.error = cap_text(mask_value(server.error, secrets))
        self.error = cap_text(self.error)  # it is also the state's message

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = self.status.value
        data["trigger"] = self.trigger.value
        for server in data["servers"]:
            server["status"] = RunStatus(server["status"]).value
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunRecord:
        """The record `to_json` wrote. Keys it does not know are ignored; a status or
        trigger it does not know raises ValueError (readers of stored records use
        flows.report.record_from_artifact, which skips such a record)."""
        return cls(
            **{
                **_known(cls, data),
                "status": RunStatus(data["status"]),
                "trigger": Trigger(data["trigger"]),
                "servers": [ServerResult.from_json(s) for s in data.get("servers") or []],
            }
        )


class StepStatus(str, Enum):
    """Where a workflow's step is (its item runs' statuses make it SUCCESS or FAILURE)."""

    PENDING = "PENDING"  # waiting for what it needs
    RUNNING = "RUNNING"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    SKIPPED = "SKIPPED"  # what it needs ended so that it must not run
    CANCELLED = "CANCELLED"  # stopped while running (cancel, fail_fast, timeout)
    NOT_STARTED = "NOT_STARTED"  # the workflow stopped before it could start

    @property
    def ended(self) -> bool:
        return self not in (StepStatus.PENDING, StepStatus.RUNNING)

    @property
    def fell_short(self) -> bool:
        """It should have run and did not succeed (what makes a workflow not SUCCESS)."""
        return self in (StepStatus.FAILURE, StepStatus.CANCELLED, StepStatus.NOT_STARTED)


@dataclass
class StepRecord:
    """One step of a workflow run: its runs (one, or one per for_each item) summed up."""

    name: str
    event: str
    status: StepStatus = StepStatus.PENDING
    run_ids: list[str] = field(default_factory=list)  # in item order
    attempts: int = 0
    duration_s: float = 0.0
    output: Any = None  # a for_each step's: the list of its items' outputs, in order
    condition: bool = False
    error: str | None = None
    items: int | None = None  # a for_each step's number of items
    reused_from: str | None = None  # the run whose output `cronium retry` reused
    output_left_out: bool = False  # `output` is a note: the record was over its size cap

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "status": self.status.value}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StepRecord:
        return cls(**{**_known(cls, data), "status": StepStatus(data["status"])})


@dataclass
class WorkflowRecord(RunRecord):
    """A workflow run's record: a run record (`event` is the workflow's name, `output` the
    outputs of the steps nothing needs, by step) with every step's."""

    steps: list[StepRecord] = field(default_factory=list)

    def make_safe(self, secrets: Sequence[str]) -> None:
        super().make_safe(secrets)
        for step in self.steps:
            step.output = mask_value(step.output, secrets)
            step.error = cap_text(mask_value(step.error, secrets))

    def to_json(self) -> dict[str, Any]:
        return {**super().to_json(), "steps": [s.to_json() for s in self.steps]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WorkflowRecord:
        record = RunRecord.from_json(data)
        steps = [StepRecord.from_json(s) for s in data.get("steps") or []]
        return cls(**{f.name: getattr(record, f.name) for f in fields(RunRecord)}, steps=steps)

    def step(self, name: str) -> StepRecord:
        return next(s for s in self.steps if s.name == name)

    def fit(self, limit: int) -> None:
        """Keep the record's JSON within `limit` bytes: the largest step outputs give way
        first, each replaced by a note saying where it is (its runs' records keep it)."""
        size = json_size(self.to_json())
        for step in sorted(self.steps, key=lambda s: -json_size(s.output)):
            if size <= limit or step.output is None:
                break
            size -= json_size(step.output)
            step.output_left_out = True
            step.output = (
                f"(left out: {json_size(step.output)} bytes of JSON; the records of its "
                "runs hold it)"
            )
            size += json_size(step.output)
        if size > limit and self.output is not None:
            self.output = f"(left out: the record was over its limit of {limit} bytes)"


def _known(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(cls)}
    return {key: value for key, value in data.items() if key in names}
