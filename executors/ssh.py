"""SSH backend: the run's directory is uploaded over SFTP to a private directory on the
server, a fixed command starts the uploaded runner there, and the directory is removed in
every outcome.

No command string contains the script, the event name, env values or variables: the env
travels as an uploaded file of `export KEY='quoted'` lines, and the only interpolated
values (our own generated paths) are `shlex.quote`d.
"""

from __future__ import annotations

import shlex
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import paramiko

from cronium_prefect.errors import ConnectionFailed, HelperProtocolError
from cronium_prefect.servers import SSHTarget
from cronium_prefect.variables import VALUE_LIMIT

from .base import ExecutionRequest, ExecutionResult, Executor, LineSink
from .ssh_files import COLLECT_TIMEOUT_S, ExecFiles, NoSftp, RemoteFiles, open_files
from .ssh_pool import ConnectionPool, Say, posix, run_fixed

__all__ = ["SSHExecutor"]

_CHUNK = 32 * 1024


class _ConnectionGone(ConnectionFailed):
    """The connection closed before the script started: nothing ran on the server."""


@dataclass
class _RemoteRun:
    transport: paramiko.Transport
    files: RemoteFiles
    local_out: Path  # the local staging's out/, where collect() puts what the script wrote
    output_limit: int
    max_files: int
    lease_s: float  # how often the run's directory is touched, to show it is not abandoned
    directory: str = ""  # absolute path on the server
    touched: float = 0.0  # time.monotonic() of the last touch
    channel: paramiko.Channel | None = None
    lost: bool = False
    signalled: bool = False
    stopped: bool = False  # what the script left running was killed after it ended


class SSHExecutor(Executor[_RemoteRun]):
    """Runs attempts on one server, on transports lent by the pool; one run at a time."""

    def __init__(
        self,
        server: SSHTarget,
        name: str,
        pool: ConnectionPool,
        remote_dir: str,
        say: Say = lambda message: None,
        stale_after: float = 600.0,
    ):
        self.server, self.name, self.pool = server, name, pool
        self.remote_dir, self.say, self.stale_after = remote_dir, say, stale_after

    def run(self, request: ExecutionRequest) -> ExecutionResult:
        # A new connection first removes what dead workers left on this server.
        reap = reap_command(self.remote_dir, self.stale_after)
        for last in (False, True):
            with self.pool.transport(self.server, self.name, self.say, reap) as transport:
                self._transport = transport
                try:
                    return super().run(request)
                except _ConnectionGone:
                    if last:
                        raise
                    # It closed before the script started (a pooled connection the server
                    # or the network dropped): nothing ran. Once more, on another one.
                except (paramiko.SSHException, OSError, EOFError) as exc:
                    raise ConnectionFailed(
                        f"connection to server {self.name!r} ({self.server.host}:"
                        f"{self.server.port}) failed during the run: {exc}"
                    ) from None
        raise AssertionError("unreachable")

    def start(self, request: ExecutionRequest) -> _RemoteRun:
        handle = _RemoteRun(
            self._transport,
            self._open_files(),
            request.staging.root / "out",
            request.output_limit,
            request.out_max_files,
            self.stale_after / 4,
        )
        try:
            handle.files.create(
                self.remote_dir,
                run_directory_name(self.stale_after),
                request,
                made=lambda directory: setattr(handle, "directory", directory),
            )
            handle.touched = time.monotonic()
            handle.channel = self._transport.open_session(timeout=self.server.connect_timeout)
            handle.channel.exec_command(
                posix(
                    f"cd {shlex.quote(handle.directory)} && exec sh ./runner.sh {request.language}"
                )
            )
        except (paramiko.SSHException, OSError, EOFError) as exc:
            self.cleanup(handle)
            raise self._failure(f"{self.name}: cannot start the script: {exc}") from None
        return handle

    def _failure(self, message: str) -> ConnectionFailed:
        """The error for a failure before the script started: _ConnectionGone when the
        connection itself has closed (run() then tries once more on another)."""
        return (_ConnectionGone if not self._transport.is_active() else ConnectionFailed)(message)

    def _open_files(self) -> RemoteFiles:
        """SFTP, else (a server without the subsystem) exec channels, said once."""
        timeout = self.server.connect_timeout
        try:
            return open_files(self._transport, timeout, self.pool.offers_sftp(self.server))
        except NoSftp as exc:
            if self.pool.refused_sftp(self.server):
                self.say(
                    f"server {self.name!r} offers no SFTP ({exc or 'refused'}): its files go "
                    "over exec channels (tar) from now on"
                )
            return ExecFiles(self._transport, timeout)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise self._failure(f"{self.name}: cannot open SFTP: {exc}") from None

    def stream(self, handle: _RemoteRun, sink: LineSink) -> None:
        try:
            self._stream(handle, sink)
        except (paramiko.SSHException, OSError, EOFError):
            handle.lost = True  # reported by collect(), after cleanup was tried

    def _stream(self, handle: _RemoteRun, sink: LineSink) -> None:
        channel = handle.channel
        assert channel is not None
        while True:
            busy = False
            if channel.recv_ready():
                sink.feed("stdout", channel.recv(_CHUNK))
                busy = True
            if channel.recv_stderr_ready():
                sink.feed("stderr", channel.recv_stderr(_CHUNK))
                busy = True
            # Before `continue`: a script that prints without a pause holds its lease too.
            if time.monotonic() - handle.touched > handle.lease_s:
                self._touch(handle)
            if busy:
                continue
            if channel.exit_status_ready() or channel.closed:
                # Drain what is still in flight; a background child may keep the stream
                # open forever, so wait for the end of it only briefly.
                deadline = time.monotonic() + 0.5
                while not (channel.eof_received or channel.closed) and time.monotonic() < deadline:
                    self._drain(channel, sink)
                    time.sleep(0.005)
                self._drain(channel, sink)
                return
            if not handle.transport.is_active():
                handle.lost = True
                return
            time.sleep(0.005)

    @staticmethod
    def _touch(handle: _RemoteRun) -> None:
        """Renew the run's lease: a directory untouched for the stale time is reaped."""
        handle.touched = time.monotonic()
        handle.files.touch(handle.directory)

    @staticmethod
    def _drain(channel: paramiko.Channel, sink: LineSink) -> None:
        while channel.recv_ready():
            sink.feed("stdout", channel.recv(_CHUNK))
        while channel.recv_stderr_ready():
            sink.feed("stderr", channel.recv_stderr(_CHUNK))

    def wait(self, handle: _RemoteRun) -> int | None:
        if handle.lost or handle.channel is None:
            return None
        status = handle.channel.recv_exit_status()
        if status >= 0:
            return status
        # paramiko reports -1 both when the connection died and when the process was
        # killed by a signal (sshd then sends exit-signal, which paramiko ignores).
        handle.lost = not handle.transport.is_active()
        handle.signalled = not handle.lost
        return None

    def kill(self, handle: _RemoteRun) -> None:
        run_fixed(handle.transport, kill_command(handle.directory), self.server.connect_timeout)
        if handle.channel is not None:
            handle.channel.close()

    def collect(self, handle: _RemoteRun, result: ExecutionResult) -> None:
        if handle.lost:
            result.error = (
                f"connection to server {self.name!r} ({self.server.host}:"
                f"{self.server.port}) was lost while the script ran"
            )
            return
        if result.timed_out:
            return
        if handle.signalled and result.error is None:
            result.error = "the script was killed by a signal (no exit status)"
        try:
            self._fetch_out(handle)
        except HelperProtocolError as exc:
            result.error = str(exc)
        except (OSError, EOFError, paramiko.SSHException) as exc:  # socket.timeout included
            reason = str(exc) or f"no answer within {COLLECT_TIMEOUT_S:g} s"
            result.error = f"reading the script's files from server {self.name!r} failed: {reason}"

    def _fetch_out(self, handle: _RemoteRun) -> None:
        if not self._stop_and_count(handle):  # what the script left could go on writing
            raise HelperProtocolError(
                f"out/ holds more than {handle.max_files} entries (CRONIUM_OUT_MAX_FILES); "
                "nothing was kept"
            )
        limit = max(handle.output_limit, 4 * VALUE_LIMIT)
        handle.files.fetch_out(handle.directory, handle.local_out, limit)

    def _stop_and_count(self, handle: _RemoteRun) -> bool:
        """Kill what the script left running, then say whether the whole out/ tree (many
        empty files, a deep tree) holds at most max_files entries: counted on the server,
        stopping one past the limit. One command, one round trip."""
        out = shlex.quote(f"{handle.directory}/out")
        most = handle.max_files
        count = f"find {out} -mindepth 1 2>/dev/null | head -n {most + 1} | wc -l"
        command = (
            f"touch -c -- {shlex.quote(handle.directory)}; "  # the lease, through collection
            f'{kill_command(handle.directory)}; [ "$({count})" -le {most} ]'
        )
        channel = handle.transport.open_session(timeout=self.server.connect_timeout)
        try:
            channel.exec_command(posix(command))
            if not channel.status_event.wait(COLLECT_TIMEOUT_S):
                raise TimeoutError("counting the entries of out/ did not finish")
            handle.stopped = True
            return channel.recv_exit_status() == 0
        finally:
            channel.close()

    def cleanup(self, handle: _RemoteRun) -> None:
        """Kill whatever the script left running (unless collecting did just that), then
        remove its directory; if the connection is gone, the pool does both on its next
        connection to this server."""
        if handle.channel is not None:
            handle.channel.close()
        if handle.directory:
            command = f"rm -rf -- {shlex.quote(handle.directory)}"
            if not handle.stopped:
                command = f"{kill_command(handle.directory)}; {command}"
            if not run_fixed(handle.transport, command, self.server.connect_timeout):
                self.pool.defer(self.server, command)
        handle.files.close()


def kill_command(directory: str) -> str:
    """SIGKILL the run's process group and session (the runner wrote both ids to `pid`),
    then every process still carrying the run's token in its environment: one started
    with setsid or as a daemon has left the session but not the environment. Twice, for
    what was forked in between."""
    return f"d={shlex.quote(directory)}; {_READ_PID} && {_KILL_GROUP}; {_SWEEP}; {_SWEEP}; true"


def run_directory_name(stale_after: float) -> str:
    """A new run directory's name, also the run's token: unique, and carrying the stale
    time of the worker that made it, which a reaper with a shorter one respects."""
    return f"run-{uuid.uuid4().hex}-{int(stale_after)}"


def reap_command(remote_dir: str, stale_after: float) -> str:
    """Kill what is left of, and remove, every run directory under `remote_dir` that no
    worker touched for its stale time (the longer of `stale_after` and the one in its
    name): its worker died (a live one touches its runs' directories every quarter of
    that, and as it collects). Times are the server's. Days may have passed since the
    ids in `pid` were written: a group or session is killed only while its leader is
    still the run's (its token or its directory), never a process that reused the id."""
    base = shlex.quote(remote_dir.rstrip("/") or ".")
    own = int(stale_after)
    return (
        f"{_OURS} now=$(date +%s); for d in {base}/run-*; do "
        '[ -d "$d" ] && [ ! -L "$d" ] || continue; n=${d##*/}; '
        # Only names we make: no newline or pattern reaches grep, no glob the shell.
        "case $n in *[!0-9a-z-]*) continue;; esac; "
        "l=${n##*-}; case $l in ''|*[!0-9]*) l=0;; esac; [ ${#l} -le 9 ] || l=0; "
        f'[ "$l" -gt {own} ] || l={own}; '
        't=$(stat -c %Y -- "$d" 2>/dev/null) || continue; '
        '[ $((now - t)) -gt "$l" ] || continue; '
        f'{_READ_PID} && _ours "$g" && _ours "$s" && {_KILL_GROUP}; {_SWEEP}; {_SWEEP}; '
        'rm -rf -- "$d"; done; true'
    )


# The run whose directory is $d: its token is the directory's name.
_SWEEP = (
    'grep -lzxF "CRONIUM_RUN_TOKEN=${d##*/}" /proc/[0-9]*/environ 2>/dev/null | '
    'while IFS=/ read -r _ _ p _; do kill -KILL "$p" 2>/dev/null; done'
)
# `pid` is written by the runner, inside the script's reach: read only a regular file
# (a FIFO there would block the read) holding two ids above 1 (-1 means every process).
_READ_PID = (
    '[ -f "$d/pid" ] && [ ! -L "$d/pid" ] && read -r g s < "$d/pid" 2>/dev/null && '
    '[ "$g" -gt 1 ] 2>/dev/null && [ "$s" -gt 1 ] 2>/dev/null'
)
_KILL_GROUP = '{ kill -KILL -- "-$g" 2>/dev/null; pkill -KILL -s "$s" 2>/dev/null; }'
_OURS = (
    '_ours() { grep -qzxF "CRONIUM_RUN_TOKEN=${d##*/}" "/proc/$1/environ" 2>/dev/null '
    '|| [ "/proc/$1/cwd" -ef "$d" ]; };'
)
