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

from cronium_prefect.caps import cap_text
from cronium_prefect.names import Trigger
from cronium_prefect.variables import mask_value

__all__ = ["RunStatus", "ServerResult", "RunRecord"]


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


def _known(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(cls)}
    return {key: value for key, value in data.items() if key in names}
