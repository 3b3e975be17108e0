"""Every error this project raises on purpose, in one tree.

    CroniumError
    ├── InvalidEvent            a definition (file, dict or model) breaks the contract
    ├── EventNotFound           a name that is neither a file nor a deployed event
    ├── RunFailed               a run ended FAILURE / TIMEOUT; carries its record
    ├── HelperProtocolError     a script left unusable helper files (non-JSON, too large, ...)
    └── ExecutorError           the infrastructure could not run the script
        ├── DockerUnavailable   the Docker daemon cannot be reached
        ├── ImageNotFound       the image is neither local nor pullable
        ├── ConnectionFailed    a remote host cannot be reached
        └── HostKeyRejected     a remote host presented an unknown or changed key

A script exiting non-zero is *not* an error: it is a result (see `ExecutionResult`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "CroniumError",
    "InvalidEvent",
    "Problem",
    "EventNotFound",
    "RunFailed",
    "HelperProtocolError",
    "ExecutorError",
    "DockerUnavailable",
    "ImageNotFound",
    "ConnectionFailed",
    "HostKeyRejected",
    "TemplateError",
    "ActionFailed",
]


class CroniumError(Exception):
    """Base of every error raised by Cronium on purpose."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a definition: where it is, which field, what is wrong."""

    message: str
    field: str = ""
    source: str = ""
    line: int | None = None
    event: str = ""  # the name of the event, or of the workflow
    kind: str = "event"  # or "workflow"

    def __str__(self) -> str:
        where = self.source
        if where and self.line is not None:
            where = f"{where}:{self.line}"
        named = self.event and f"{self.kind} {self.event!r}"
        parts = [p for p in (where, named, self.field) if p]
        return ": ".join([*parts, self.message])


class InvalidEvent(CroniumError):
    """One or more definitions are invalid; `problems` lists each, with its location."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class EventNotFound(CroniumError):
    """The name given is not a definition file and no deployed event has it."""


class RunFailed(CroniumError):
    """The result of a failed run: `state.result()` raises it, `.record` is the RunRecord.

    Prefect keeps only the message when it stores the result as JSON, so a record read in
    another process is None there; the run's record artifact holds the full record.
    """

    # `Any`: a cronium_prefect.record.RunRecord, not imported here (the record module
    # imports the caps, which raise these errors: a cycle).
    def __init__(self, record_or_message: Any):
        if isinstance(record_or_message, str):
            self.record: Any = None
            message = record_or_message
        else:
            self.record = record = record_or_message
            message = f"{record.event} {record.status.value}: {record.error or ''}".strip()
        super().__init__(message)


class HelperProtocolError(CroniumError):
    """The script's helper files could not be accepted (bad JSON, over the size limit...)."""


class ExecutorError(CroniumError):
    """The infrastructure failed before or while running the script."""


class DockerUnavailable(ExecutorError):
    """The Docker daemon is not reachable."""


class ImageNotFound(ExecutorError):
    """The image is not present locally and could not be pulled."""


class ConnectionFailed(ExecutorError):
    """A remote host could not be reached or the connection broke."""


class HostKeyRejected(ExecutorError):
    """A remote host's key is unknown or differs from the pinned one."""


class TemplateError(CroniumError):
    """A message, subject or HTTP template failed to render (syntax, undefined name, or
    refused by the sandbox); the text names the template and its line."""


class ActionFailed(CroniumError):
    """A conditional action or a message failed; the run that fired it keeps its status."""
