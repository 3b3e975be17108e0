"""What one event run leaves behind: its status and the record SPEC §3 lists."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any

__all__ = ["RunStatus", "ServerResult", "RunRecord"]


class RunStatus(str, Enum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    TIMEOUT = "TIMEOUT"
    PARTIAL = "PARTIAL"
    CANCELLED = "CANCELLED"


@dataclass
class ServerResult:
    name: str
    status: RunStatus
    exit_code: int | None
    error: str | None = None
    output: Any = None
    condition: bool = False


@dataclass
class RunRecord:
    """The run as a JSON document: the flow's result and the artifact's content."""

    event: str
    run_id: str
    status: RunStatus
    trigger: str
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

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = self.status.value
        for server in data["servers"]:
            server["status"] = RunStatus(server["status"]).value
        return data
