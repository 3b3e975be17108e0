"""Prefect blocks of Cronium: SSH servers, variables and email.

Registered through the `prefect.collections` entry point and with
`prefect block register -m cronium_prefect.blocks`. Messages go through any Prefect
notification block (Slack, Discord, webhooks, ...) or `cronium-email`.
"""

from .email import CroniumEmail
from .ssh_server import SSHServer
from .variable import CroniumVariable

__all__ = ["SSHServer", "CroniumVariable", "CroniumEmail"]
