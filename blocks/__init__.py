"""Prefect blocks of Cronium: SSH servers and variables.

Registered through the `prefect.collections` entry point and with
`prefect block register -m cronium_prefect.blocks`. Messages use Prefect's own
notification blocks.
"""

from .ssh_server import SSHServer
from .variable import CroniumVariable

__all__ = ["SSHServer", "CroniumVariable"]
