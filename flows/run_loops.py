"""Event loops in threads of their own, for the flow runs `cronium worker` executes.

Prefect's engine blocks its event loop at times: for every deployment run it waits until a
suspension-observer thread has connected to the event stream (and joins that thread at
the end, up to 2 s), and it reads the result storage with a synchronous request. On the
worker's loop, shared by every run, each such wait stalled all runs and the worker's
polling: with 8 runs at once that loop was blocked more than half the time
(bench/burst.py). Here each run has a loop to itself, so a wait delays only that run, and
a run that blocks its loop for long holds up no other run, polling or cancellation (the
burst's throughput stayed the same: on 2 cores it is bound by CPU).

Loops are kept for later runs (as many as runs executing at once), each with its own API
client: a client belongs to one loop, and a new one costs ~20 ms of TLS set-up.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from prefect.settings import temporary_settings

from cronium_prefect.prefect_adapter import loop_client

__all__ = ["RunHandle", "RunLoops"]

Work = Callable[[], Awaitable[Any]]


class RunHandle:
    """One run on a loop. `cancel` works from any thread, before or while it runs;
    `finished` resolves when the run has ended (with its error, if it raised)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._task: asyncio.Task[Any] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.cancelled = False
        self.finished: concurrent.futures.Future[None] = concurrent.futures.Future()

    def cancel(self) -> None:
        with self._lock:
            self.cancelled = True
            if self._task is None or self._loop is None or self.finished.done():
                return
            try:
                self._loop.call_soon_threadsafe(self._task.cancel)
            except RuntimeError:
                pass  # its loop has closed: the run is over

    async def host(self, work: Work) -> None:
        """Runs on the loop. A cancellation ends the run quietly: the engine has recorded
        it, and it must not reach the worker's loop as an error of the run."""
        with self._lock:
            self._task, self._loop = asyncio.current_task(), asyncio.get_running_loop()
            if self.cancelled:
                self._task.cancel()
        try:
            await work()
        except asyncio.CancelledError:
            self.finished.set_result(None)
        except BaseException as exc:
            self.finished.set_exception(exc)
        else:
            self.finished.set_result(None)


class _Loop:
    """A thread running an event loop that holds an API client of its own."""

    def __init__(self, settings: dict[Any, Any]) -> None:
        self.ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._settings = settings
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._context: contextvars.Context | None = None
        # The worker's context (its settings, the shared sync client) is the loop's too.
        parent = contextvars.copy_context()
        threading.Thread(
            target=parent.run, args=(asyncio.run, self._serve()), daemon=True, name="cronium-run"
        ).start()

    async def _serve(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        try:
            with temporary_settings(self._settings):
                async with loop_client():
                    self._context = contextvars.copy_context()
                    self.ready.set_result(None)
                    await self._stop.wait()
        except Exception as exc:
            if self.ready.done():
                raise
            self.ready.set_exception(exc)

    def submit(self, work: Work, handle: RunHandle) -> None:
        assert self._context is not None and self._loop is not None
        # A task copies the context it is created in: this loop's, with its client.
        self._context.run(asyncio.run_coroutine_threadsafe, handle.host(work), self._loop)

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            try:
                self._loop.call_soon_threadsafe(self._stop.set)
            except RuntimeError:
                pass  # already closed


class RunLoops:
    """The worker's run loops: one per run executing at once, reused by later runs."""

    def __init__(self, grace_seconds: float, settings: dict[Any, Any] | None = None):
        """`settings`: Prefect settings the runs get (on top of the worker's)."""
        self._idle: list[_Loop] = []
        self._all: list[_Loop] = []
        self._grace = grace_seconds
        self._settings = settings or {}

    async def acquire(self) -> _Loop:
        """A loop for one run; raises what kept a new loop from starting."""
        if self._idle:
            return self._idle.pop()
        loop = _Loop(self._settings)
        self._all.append(loop)
        try:
            await asyncio.wrap_future(loop.ready)
        except BaseException:
            self._all.remove(loop)
            loop.stop()
            raise
        return loop

    async def run(self, loop: _Loop, work: Work, handle: RunHandle) -> None:
        """Run `work` on `loop` until it ends, and give the loop back. Cancelled here (the
        worker is stopping), it cancels the run and waits up to the grace period for its
        engine to record that."""
        loop.submit(work, handle)
        finished = asyncio.wrap_future(handle.finished)
        try:
            await asyncio.shield(finished)
        except asyncio.CancelledError:
            handle.cancel()
            with anyio.CancelScope(shield=True), anyio.move_on_after(self._grace):
                await asyncio.wait([finished])
            raise
        finally:
            if handle.finished.done():
                self._idle.append(loop)
            else:  # still busy with a run that outlived its grace: not reused
                if loop in self._all:
                    self._all.remove(loop)
                loop.stop()

    def close(self) -> None:
        for loop in self._all:
            loop.stop()
        self._all.clear()
        self._idle.clear()
