"""The executor contract: one request in, one result out; backends differ only in plumbing.

The base class owns what every backend shares — timeout bookkeeping, splitting output into
lines, masking secrets, counting lines and assembling the result. A backend implements
`start`, `stream`, `wait`, `kill`, `collect` and `cleanup` for its infrastructure.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from cronium_prefect.errors import HelperProtocolError
from cronium_prefect.runtime_helpers.host import Collected, Staging
from cronium_prefect.terminal import visible
from cronium_prefect.variables import mask_secrets

__all__ = [
    "ExecutionRequest",
    "ExecutionResult",
    "Limits",
    "LineSink",
    "Executor",
    "MAX_LINE_BYTES",
]

# Longer lines are cut into pieces, each marked, so nothing is dropped by a log backend.
MAX_LINE_BYTES = 64 * 1024
LineCallback = Callable[[str, str], None]  # (stream name, line)


@dataclass(frozen=True)
class Limits:
    memory: str
    cpus: float
    pids: int
    network: str
    tmpfs_size: str


@dataclass
class ExecutionRequest:
    """Everything a backend needs, fully resolved: no lookups happen past this point."""

    run_id: str
    language: str  # bash | python | node
    staging: Staging
    timeout: float
    env: dict[str, str] = field(default_factory=dict)
    on_line: LineCallback = lambda stream, line: None
    secrets: Sequence[str] = ()
    output_limit: int = 1024 * 1024
    out_max_files: int = 1000  # entries in out/ (files and directories)
    max_variables: int = 100  # variables one run may write
    image: str = ""
    limits: Limits | None = None
    labels: dict[str, str] = field(default_factory=dict)
    cancel: threading.Event | None = None  # set from elsewhere: kill the script now


@dataclass
class ExecutionResult:
    exit_code: int | None = None
    timed_out: bool = False
    oom_killed: bool = False
    error: str | None = None
    setup_s: float = 0.0
    execution_s: float = 0.0
    lines: int = 0
    collected: Collected = field(default_factory=Collected)

    @property
    def succeeded(self) -> bool:
        return self.exit_code == 0 and not self.timed_out and self.error is None

    @property
    def status(self) -> str:
        if self.timed_out:
            return "TIMEOUT"
        return "SUCCESS" if self.succeeded else "FAILURE"


class LineSink:
    """Turns byte chunks from two streams into masked lines, in the order they arrive."""

    def __init__(self, on_line: LineCallback, secrets: Sequence[str] = ()):
        self._on_line = on_line
        self._secrets = tuple(secrets)
        self._secret_bytes = tuple({s.encode() for s in secrets if s})
        # A piece is cut off a long line only once the bytes after the cut are in too, so
        # that a secret across the cut is seen whole.
        self._lookahead = max((len(s) for s in self._secret_bytes), default=0)
        self._partial: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self.count = 0

    def feed(self, stream: str, chunk: bytes) -> None:
        with self._lock:
            buffer = self._partial.get(stream, b"") + chunk
            *lines, rest = buffer.split(b"\n")
            for line in lines:
                self._emit(stream, line)
            while len(rest) > MAX_LINE_BYTES + self._lookahead:
                cut = self._cut_point(rest)
                self._emit(stream, rest[:cut], continued=True)
                rest = rest[cut:]
            self._partial[stream] = rest

    def close(self) -> None:
        """Flush a last line that had no trailing newline."""
        with self._lock:
            for stream, rest in self._partial.items():
                if rest:
                    self._emit(stream, rest)
            self._partial.clear()

    def mask(self, text: str) -> str:
        return mask_secrets(text, self._secrets)

    def _cut_point(self, data: bytes) -> int:
        """Where to cut a line longer than MAX_LINE_BYTES: at the limit, or earlier so that
        no secret is split between two pieces (each piece is masked on its own)."""
        cut = MAX_LINE_BYTES
        moved = True
        while moved:
            moved = False
            for secret in self._secret_bytes:
                start = data.find(secret, max(0, cut - len(secret) + 1), cut + len(secret) - 1)
                if 0 < start < cut < start + len(secret):
                    cut, moved = start, True
        return cut

    def _emit(self, stream: str, raw: bytes, continued: bool = False) -> None:
        while len(raw) > MAX_LINE_BYTES:
            cut = self._cut_point(raw)
            self._emit(stream, raw[:cut], continued=True)
            raw = raw[cut:]
        # Masked first (a control character cannot hide a secret), then made safe to show.
        line = self.mask(raw.rstrip(b"\r").decode("utf-8", errors="replace"))
        line = visible(line, keep_colours=True)
        if continued:
            line += " [line continues]"
        self.count += 1
        self._on_line(stream, line)


H = TypeVar("H")


class Executor(ABC, Generic[H]):
    """Runs one script attempt. A non-zero exit is a result; infrastructure failures raise
    `ExecutorError` from `start` (nothing was run) or are recorded in `result.error`."""

    def run(self, request: ExecutionRequest) -> ExecutionResult:
        result = ExecutionResult()
        sink = LineSink(request.on_line, request.secrets)
        began = time.monotonic()
        handle = self.start(request)
        try:
            started = time.monotonic()
            result.setup_s = started - began
            finished, timed_out = threading.Event(), threading.Event()
            cancelled = request.cancel or threading.Event()

            def watch() -> None:
                """Kill on timeout or cancellation, whichever comes first."""
                deadline = started + request.timeout
                while not finished.wait(min(0.1, max(0.0, deadline - time.monotonic()))):
                    if time.monotonic() >= deadline:
                        timed_out.set()
                    if timed_out.is_set() or cancelled.is_set():
                        self.kill(handle)
                        return

            watcher = threading.Thread(target=watch, daemon=True, name="cronium-deadline")
            watcher.start()
            try:
                self.stream(handle, sink)
                result.exit_code = self.wait(handle)
            finally:
                finished.set()
                sink.close()
            result.execution_s = time.monotonic() - started
            result.timed_out = timed_out.is_set()
            if cancelled.is_set() and not result.timed_out:
                result.error = "cancelled: the script was killed"
            self.collect(handle, result)
        finally:
            self.cleanup(handle)
        result.lines = sink.count
        if result.timed_out:
            result.error = f"timed out after {_seconds(request.timeout)}; the script was killed"
        elif result.error is None:
            try:
                result.collected = request.staging.collect(
                    request.output_limit, request.max_variables
                )
                if result.collected.error is not None:
                    result.error = sink.mask(result.collected.error)
            except HelperProtocolError as exc:
                result.error = sink.mask(str(exc))
        if result.error is None and result.exit_code not in (0, None):
            result.error = f"exit code {result.exit_code}"
        return result

    @abstractmethod
    def start(self, request: ExecutionRequest) -> H:
        """Prepare and start the script; raise ExecutorError if it cannot be started."""

    @abstractmethod
    def stream(self, handle: H, sink: LineSink) -> None:
        """Feed output to the sink as it is printed; return when both streams end."""

    @abstractmethod
    def wait(self, handle: H) -> int | None:
        """The exit code once the script has ended."""

    @abstractmethod
    def kill(self, handle: H) -> None:
        """Stop the script and everything it started, now. Called from the deadline thread."""

    def collect(self, handle: H, result: ExecutionResult) -> None:  # noqa: B027 - optional
        """Record backend facts on the result (e.g. OOM kill) before cleanup."""

    @abstractmethod
    def cleanup(self, handle: H) -> None:
        """Release everything the attempt used, in every outcome."""


def _seconds(value: float) -> str:
    return f"{value:g}s"
