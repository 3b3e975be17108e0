"""Every name the project mints, defined once: what other code, tests and readers match.

Pure: no Prefect, no I/O.
"""

from __future__ import annotations

import re

__all__ = ["MASK", "SCRIPT_LINE_FORMAT", "SCRIPT_LINE"]

# A script's output line in the run's log: `[stdout] text`, or `[web-1 stderr] text` when
# the event runs on several servers (logging %-style: server prefix, stream, line).
SCRIPT_LINE_FORMAT = "[%s%s] %s"
SCRIPT_LINE = re.compile(r"^\[(\S+ )?(stdout|stderr)\] ")

# What a secret becomes wherever it would show: logs, messages, the CLI, the dashboard.
MASK = "***"
