"""One message's delivery, as the run's table artifact, the emitted event and the message
subflow's result record it."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import Enum
from typing import Any

__all__ = ["Delivery", "DeliveryStatus"]


class DeliveryStatus(str, Enum):
    SENT = "sent"
    FAILED = "failed"


@dataclass
class Delivery:
    """One message, as recorded in the artifact and the emitted event."""

    event: str
    run_id: str
    action: str  # where it was defined: actions[N].send_message, or tool
    channel: str
    subject: str | None
    status: DeliveryStatus
    error: str | None
    attempts: int
    time: str

    @property
    def sent(self) -> bool:
        return self.status is DeliveryStatus.SENT

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "status": self.status.value}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Delivery:
        return cls(**{**data, "status": DeliveryStatus(data["status"])})
