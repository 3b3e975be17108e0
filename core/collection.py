"""What Prefect loads through the `prefect.collections` entry point: the block types and the
`cronium` worker type (so `prefect worker start --type cronium` works too)."""

from cronium_prefect.blocks import CroniumEmail, CroniumVariable, SSHServer
from cronium_prefect.flows.worker import CroniumWorker

__all__ = ["CroniumEmail", "CroniumVariable", "SSHServer", "CroniumWorker"]
