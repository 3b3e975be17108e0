"""The `cronium` command line, one module per noun: events, runs, servers, vars and the
local stack. Exit codes: 0 success, 1 the run or command failed, 2 bad usage or invalid
input (always a message, never a traceback)."""

from .app import app, main

__all__ = ["app", "main"]
