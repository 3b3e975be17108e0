"""Rendering untrusted templates in child processes with hard limits.

Jinja's sandbox stops attribute tricks, not amplification: `'x'|center(2000000000)`,
`'%2000000000s'|format('x')`, chained `replace`, nested `range` loops or chained powers
build gigabytes or spin for minutes, and a rendered message then travels to Prefect's API.
Bounding every string-building operation would be a list that is never complete, so each
template renders in a child process whose address space is capped (RLIMIT_AS), whose CPU
time per template is capped (a profiling timer), behind a wall-clock deadline the parent
enforces by killing it, and whose result has a size cap. A child that hit a limit is
discarded and a fresh one takes its place; the worker's memory stays flat.

Children are kept for reuse (one per template rendering at the same time, up to
`processes`); each costs ~35 MB and ~0.6 s to start.
"""

from __future__ import annotations

import json
import os
import resource
import select
import signal
import subprocess
import sys
import threading
import time
from typing import Any

from cronium_prefect.errors import TemplateError

__all__ = ["TemplateSandbox"]

_HEADER = 8  # bytes of the length prefix of every message, each way
_STARTUP_SECONDS = 15.0  # a child's import time on a loaded machine, at worst


class TemplateSandbox:
    def __init__(
        self,
        memory_mb: int = 256,
        cpu_seconds: float = 2.0,
        max_chars: int = 1_000_000,
        processes: int = 4,
    ):
        self.memory_mb = memory_mb
        self.cpu_seconds = cpu_seconds
        self.max_chars = max_chars
        self._idle: list[_Child] = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(processes)
        self._closed = False

    def render(self, template: str, context: dict[str, Any], where: str) -> str:
        """Render `template` with `context` (JSON values); raises TemplateError naming
        `where` for a bad template and for one that went over a limit."""
        return self._ask({"template": template, "context": context, "where": where})["text"]

    def evaluate(self, template: str, context: dict[str, Any], where: str) -> Any:
        """templates.evaluate, within the same limits: one `{{ expression }}` gives its
        JSON value, any other text its rendering."""
        request = {"template": template, "context": context, "where": where, "evaluate": True}
        return self._ask(request)["value"]

    def _ask(self, message: dict[str, Any]) -> dict[str, Any]:
        where = message["where"]
        request = json.dumps(message, default=str).encode()
        with self._slots:
            try:
                child = self._take()
            except OSError as exc:  # no process could be started (EMFILE, ENOMEM, ...)
                raise TemplateError(f"{where}: cannot start the template renderer: {exc}") from None
            try:
                reply = child.ask(request, self._deadline(), self._max_reply())
            except _ChildFailed as exc:
                child.kill()
                raise TemplateError(f"{where}: {exc}") from None
            except BaseException as exc:  # a bad reply, an interrupt: never keep the child
                child.kill()
                if isinstance(exc, Exception):
                    raise TemplateError(f"{where}: the template renderer failed: {exc}") from None
                raise
            if "error" not in reply:
                self._give_back(child)
                return reply
            if reply.get("limit"):
                child.kill()  # its heap may stay large: a fresh child next time
            else:
                self._give_back(child)
            raise TemplateError(reply["error"])

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for child in idle:
            child.kill()

    def _deadline(self) -> float:
        # CPU time is capped in the child; this catches what the timer cannot interrupt
        # (one long call into C) and a child that stopped answering.
        return time.monotonic() + 2 * self.cpu_seconds + 2.0

    def _max_reply(self) -> int:
        # The capped text as JSON in UTF-8: at most 6 bytes a character (`\u001b` for a
        # control character; others take 1 to 4).
        return 6 * self.max_chars + 4096

    def _take(self) -> _Child:
        with self._lock:
            if self._closed:
                raise TemplateError("the template sandbox is closed")
            if self._idle:
                return self._idle.pop()
        return _Child.start(self.memory_mb, self.cpu_seconds, self.max_chars)

    def _give_back(self, child: _Child) -> None:
        with self._lock:
            if not self._closed:
                self._idle.append(child)
                return
        child.kill()


class _ChildFailed(Exception):
    pass


class _Child:
    def __init__(self, process: subprocess.Popen[bytes]):
        self.process = process
        self.started = False

    @classmethod
    def start(cls, memory_mb: int, cpu_seconds: float, max_chars: int) -> _Child:
        command = [
            sys.executable,
            "-m",
            __name__,
            str(memory_mb),
            repr(cpu_seconds),
            str(max_chars),
        ]
        process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env={k: v for k, v in os.environ.items() if not k.startswith("CRONIUM_")},
            start_new_session=True,  # a terminal's Ctrl-C reaches the worker, not this
            close_fds=True,
        )
        return cls(process)

    def ask(self, request: bytes, deadline: float, max_reply: int) -> dict[str, Any]:
        if not self.started:  # the first answer also waits for the child's imports
            deadline += _STARTUP_SECONDS
            self.started = True
        self._write(len(request).to_bytes(_HEADER, "big") + request, deadline)
        size = int.from_bytes(self._read(_HEADER, deadline), "big")
        if size > max_reply:
            raise _ChildFailed(f"the renderer answered {size} bytes (limit {max_reply})")
        return json.loads(self._read(size, deadline))

    def _write(self, data: bytes, deadline: float) -> None:
        """All of `data` to the child's stdin by the deadline (a child that stopped reading
        must not hold this thread)."""
        assert self.process.stdin is not None
        fd = self.process.stdin.fileno()
        os.set_blocking(fd, False)
        view = memoryview(data)
        while view:
            if not _ready(fd, select.POLLOUT, deadline):
                raise _ChildFailed("the template renderer did not take the request in time")
            try:
                view = view[os.write(fd, view[: 1 << 16]) :]
            except BlockingIOError:
                continue
            except OSError:  # BrokenPipeError: it died
                raise _ChildFailed(self._died()) from None

    def _read(self, size: int, deadline: float) -> bytes:
        assert self.process.stdout is not None
        fd = self.process.stdout.fileno()
        chunks, got = [], 0
        while got < size:
            if not _ready(fd, select.POLLIN, deadline):
                raise _ChildFailed("rendering took too long and was stopped")
            chunk = os.read(fd, min(size - got, 1 << 20))
            if not chunk:
                raise _ChildFailed(self._died())
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    def _died(self) -> str:
        try:
            code = self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return "the template renderer stopped answering"
        return f"the template renderer stopped (exit code {code})"

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()


def _ready(fd: int, event: int, deadline: float) -> bool:
    """Whether `fd` is ready for `event` (or hung up) before the deadline; poll, not
    select, which fails on descriptors above 1023."""
    poller = select.poll()
    poller.register(fd, event)
    left = deadline - time.monotonic()
    return left > 0 and bool(poller.poll(left * 1000))


# The child's side.


class _OverTime(BaseException):
    """Raised by the CPU timer inside rendering; a BaseException, so no `except Exception`
    on the way (Jinja's, a filter's) swallows it."""


def _over_time(signum: int, frame: Any) -> None:
    raise _OverTime


def _address_space_now() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def _serve(memory_mb: int, cpu_seconds: float, max_chars: int) -> None:
    from cronium_prefect.templates import evaluate, render  # imported before the limit

    budget = memory_mb * 1024 * 1024
    limit = _address_space_now() + budget
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    signal.signal(signal.SIGPROF, _over_time)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    while True:
        header = stdin.read(_HEADER)
        if len(header) < _HEADER:
            return  # the parent closed the pipe: its sandbox was closed
        request = json.loads(stdin.read(int.from_bytes(header, "big")))
        where = request["where"]
        reply: dict[str, Any]
        try:
            signal.setitimer(signal.ITIMER_PROF, cpu_seconds)
            try:
                if request.get("evaluate"):
                    value = evaluate(request["template"], request["context"], where)
                    size = len(json.dumps(value, ensure_ascii=False))
                    reply = {"value": value}
                else:
                    text = render(request["template"], request["context"], where)
                    size = len(text)
                    reply = {"text": text}
            finally:
                signal.setitimer(signal.ITIMER_PROF, 0)
            if size > max_chars:
                reply = {
                    "error": f"{where}: renders to {size} characters, over the limit "
                    f"of {max_chars} (CRONIUM_TEMPLATE_MAX_CHARS)",
                    "limit": True,
                }
        except TemplateError as exc:
            reply = {"error": str(exc)}
        except _OverTime:
            reply = {
                "error": f"{where}: used more than {cpu_seconds:g} s of CPU and was stopped "
                "(CRONIUM_TEMPLATE_CPU_SECONDS)",
                "limit": True,
            }
        except MemoryError:
            reply = {
                "error": f"{where}: needed more than {memory_mb} MiB and was stopped "
                "(CRONIUM_TEMPLATE_MEMORY_MB)",
                "limit": True,
            }
        data = json.dumps(reply, ensure_ascii=False).encode("utf-8", "replace")  # lone surrogates
        stdout.write(len(data).to_bytes(_HEADER, "big") + data)
        stdout.flush()


if __name__ == "__main__":
    _serve(int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]))
