"""SSH connections shared across runs: a pool per server and a circuit breaker per server.

Sequential and concurrent runs on one server share authenticated transports (a run opens
channels on one; at most `max_runs` runs share a transport, below OpenSSH's default of 10
sessions per connection). Dead transports are evicted; keep-alives detect silent drops.
After `threshold` consecutive connection failures a server's circuit opens: runs fail at
once for `cooldown` seconds, then one attempt is let through (half-open).
"""

from __future__ import annotations

import io
import logging
import shlex
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import paramiko

from cronium_prefect.caps import cap_text
from cronium_prefect.errors import ConnectionFailed, HostKeyRejected
from cronium_prefect.servers import SSHTarget, fingerprint

__all__ = [
    "ConnectionPool",
    "CircuitBreaker",
    "Announce",
    "connect",
    "posix",
    "run_fixed",
]

# Paramiko's transport thread logs a traceback for a server that breaks the protocol; with
# no handler of the caller's, Python prints it on stderr. Our ConnectionFailed says it.
logging.getLogger("paramiko").addHandler(logging.NullHandler())

NO_SFTP_MEMORY_S = 600.0  # then SFTP is asked for again (a server may have gained it)
FIXED_COMMAND_S = 30.0  # a kill, a reap of dead runs: each ends well within this
KEEPALIVE_S = 15
Say = Callable[[str], None]


def _load_key(server: SSHTarget) -> paramiko.PKey:
    text = server.private_key.get_secret_value() if server.private_key else ""
    passphrase = server.key_passphrase.get_secret_value() if server.key_passphrase else None
    errors = []
    for kind in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return kind.from_private_key(io.StringIO(text), password=passphrase)
        except paramiko.PasswordRequiredException:
            raise ConnectionFailed(
                f"{server.address}: the private key needs key_passphrase"
            ) from None
        except (paramiko.SSHException, ValueError) as exc:
            errors.append(f"{kind.__name__}: {exc}")
    raise ConnectionFailed(f"{server.address}: private_key is not a key paramiko can read")


def _no_session(where: str, timeout: float) -> ConnectionFailed:
    return ConnectionFailed(
        f"{where} accepted the connection but set up no SSH session within "
        f"{timeout:g} s (no SSH banner: a firewall, or not an SSH server?)"
    )


def connect(server: SSHTarget, trust_unknown: bool = False) -> paramiko.Transport:
    """An authenticated transport whose host key matched the pinned one.

    Host key failures are HostKeyRejected (never retried blindly); everything else that
    keeps us from a session is ConnectionFailed.
    """
    where = f"{server.host}:{server.port}"
    try:
        sock = socket.create_connection((server.host, server.port), timeout=server.connect_timeout)
    except OSError as exc:
        raise ConnectionFailed(f"cannot connect to {where}: {exc.strerror or exc}") from None
    # Each SFTP request and exec is a small write awaiting an answer: Nagle's algorithm
    # held them for the peer's delayed ACK (about 20 ms per request on loopback).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    transport = paramiko.Transport(sock)
    transport.banner_timeout = transport.auth_timeout = server.connect_timeout
    try:
        transport.start_client(timeout=server.connect_timeout)
        if not transport.initial_kex_done:  # timed out; paramiko would say "No existing session"
            raise _no_session(where, server.connect_timeout)
        key = transport.get_remote_server_key()
        seen = fingerprint(key.asbytes())
        pinned = server.pinned_fingerprint()
        if pinned is None and not trust_unknown:
            raise HostKeyRejected(
                f"{where} presented an unknown host key {key.get_name()} {seen}; refusing to "
                "connect. Check it, then trust it with `cronium server add --trust-host-key`"
            )
        if pinned is not None and pinned != seen:
            raise HostKeyRejected(
                f"{where} presented host key {seen}, but {pinned} is pinned: the key changed "
                "or someone is in between; refusing to connect"
            )
        if server.private_key is not None:
            transport.auth_publickey(server.username, _load_key(server))
        elif server.password is not None:
            transport.auth_password(server.username, server.password.get_secret_value())
        else:
            raise ConnectionFailed(f"{server.address}: no private_key or password configured")
        # Paramiko's reader sends keep-alives from its socket timeouts: leave those as they are.
        transport.set_keepalive(KEEPALIVE_S)
        return transport
    except paramiko.AuthenticationException:
        transport.close()
        raise ConnectionFailed(f"{server.address}: authentication failed") from None
    except (paramiko.SSHException, OSError, EOFError) as exc:
        transport.close()
        if "protocol banner" in str(exc):  # paramiko's words for a banner that never came
            raise _no_session(where, server.connect_timeout) from None
        # A server's banner is in paramiko's error, and paramiko reads it with no cap.
        raise ConnectionFailed(cap_text(f"cannot open an SSH session to {where}: {exc}")) from None
    except BaseException:
        transport.close()
        raise


def posix(command: str) -> str:
    """Our commands are POSIX sh; the login shell (csh, fish...) only has to start sh."""
    return f"sh -c {shlex.quote(command)}"


def run_fixed(transport: paramiko.Transport, command: str, timeout: float) -> bool:
    """Run one of our own fixed commands on a fresh channel; False if the connection failed
    or the command did not end within FIXED_COMMAND_S (a FIFO a script left where the
    command reads must not hang the caller: its channel is closed)."""
    try:
        channel = transport.open_session(timeout=timeout)
        try:
            channel.exec_command(posix(command))
            return channel.status_event.wait(FIXED_COMMAND_S)
        finally:
            channel.close()
    except (paramiko.SSHException, OSError, EOFError):
        return False


# How a breaker's transitions (name, "open" | "closed", failures, cooldown) are made known
# beyond this process: the flows layer sends them as Prefect events.
Announce = Callable[[str, str, int, float], None]


def _nobody(name: str, state: str, failures: int, cooldown: float) -> None:
    pass


@dataclass
class CircuitBreaker:
    threshold: int = 3
    cooldown: float = 30.0
    failures: int = 0
    opened_at: float | None = None
    trial: bool = False  # half-open: one connection attempt is in flight
    lock: threading.Lock = field(default_factory=threading.Lock)
    announce: Announce = _nobody

    def check(self, name: str, say: Say) -> None:
        with self.lock:
            if self.opened_at is None:
                return
            waited = time.monotonic() - self.opened_at
            if waited < self.cooldown or self.trial:
                raise ConnectionFailed(
                    f"circuit open for server {name!r} after {self.failures} consecutive "
                    "connection failures; "
                    + (
                        f"not trying for another {self.cooldown - waited:.0f} s"
                        if not self.trial
                        else "a trial connection is under way"
                    )
                )
            self.trial = True
            say(f"circuit half-open for server {name!r}: trying one connection")

    def succeeded(self, name: str, say: Say) -> None:
        with self.lock:
            closing = self.opened_at is not None
            if closing:
                say(f"circuit closed for server {name!r}: connected again")
            self.failures, self.opened_at, self.trial = 0, None, False
        if closing:
            self.announce(name, "closed", 0, self.cooldown)

    def failed(self, name: str, say: Say) -> None:
        with self.lock:
            self.failures += 1
            self.trial = False
            opening = self.failures >= self.threshold
            if opening:
                self.opened_at = time.monotonic()
                say(
                    f"circuit open for server {name!r} after {self.failures} consecutive "
                    f"connection failures; failing fast for {self.cooldown:.0f} s"
                )
        if opening:
            self.announce(name, "open", self.failures, self.cooldown)


@dataclass
class _Slot:
    transport: paramiko.Transport
    runs: int = 0


class ConnectionPool:
    def __init__(
        self,
        max_runs: int = 4,
        threshold: int = 3,
        cooldown: float = 30.0,
        announce: Announce = _nobody,
    ):
        self.max_runs = max_runs
        self.threshold, self.cooldown, self.announce = threshold, cooldown, announce
        self._slots: dict[str, list[_Slot]] = {}
        self._breakers: dict[str, CircuitBreaker] = {}
        self._deferred: dict[str, list[str]] = {}  # host:port -> cleanup commands owed
        self._no_sftp: dict[str, float] = {}  # connection key -> when it refused SFTP
        self._lock = threading.Lock()

    def offers_sftp(self, server: SSHTarget) -> bool:
        """False for NO_SFTP_MEMORY_S after the server refused the SFTP subsystem."""
        with self._lock:
            since = self._no_sftp.get(server.connection_key())
            return since is None or time.monotonic() - since > NO_SFTP_MEMORY_S

    def refused_sftp(self, server: SSHTarget) -> bool:
        """Remember that the server has no SFTP; True the first time, to say it once."""
        with self._lock:
            first = server.connection_key() not in self._no_sftp
            self._no_sftp[server.connection_key()] = time.monotonic()
            return first

    def defer(self, server: SSHTarget, command: str) -> None:
        """A cleanup that could not run (connection lost): run it on the next connection."""
        with self._lock:
            self._deferred.setdefault(f"{server.host}:{server.port}", []).append(command)

    def _run_deferred(self, server: SSHTarget, transport: paramiko.Transport) -> None:
        with self._lock:
            owed = self._deferred.pop(f"{server.host}:{server.port}", [])
        for command in owed:
            if not run_fixed(transport, command, server.connect_timeout):
                self.defer(server, command)

    def breaker(self, server: SSHTarget) -> CircuitBreaker:
        with self._lock:
            return self._breakers.setdefault(
                f"{server.host}:{server.port}",
                CircuitBreaker(self.threshold, self.cooldown, announce=self.announce),
            )

    @contextmanager
    def transport(
        self, server: SSHTarget, name: str, say: Say, on_connect: str | None = None
    ) -> Iterator[paramiko.Transport]:
        """Lend a live transport to one run; connect when none has room, then run our own
        fixed `on_connect` command on the new connection (its failure is not the run's)."""
        key = server.connection_key()
        slot = self._reserve(key)
        if slot is None:
            breaker = self.breaker(server)
            breaker.check(name, say)
            try:
                transport = connect(server)
            except ConnectionFailed:
                breaker.failed(name, say)
                raise
            breaker.succeeded(name, say)
            if on_connect is not None:
                run_fixed(transport, on_connect, server.connect_timeout)
            slot = _Slot(transport, runs=1)
            with self._lock:
                self._slots.setdefault(key, []).append(slot)
        self._run_deferred(server, slot.transport)
        try:
            yield slot.transport
        finally:
            with self._lock:
                slot.runs -= 1
                if not slot.transport.is_active():
                    self._evict(key, slot)

    def _reserve(self, key: str) -> _Slot | None:
        with self._lock:
            for slot in list(self._slots.get(key, [])):
                if not slot.transport.is_active():
                    self._evict(key, slot)
                elif slot.runs < self.max_runs:
                    slot.runs += 1
                    return slot
        return None

    def _evict(self, key: str, slot: _Slot) -> None:
        slots = self._slots.get(key, [])
        if slot in slots:
            slots.remove(slot)
        slot.transport.close()

    def close(self) -> None:
        with self._lock:
            for key, slots in list(self._slots.items()):
                for slot in list(slots):
                    self._evict(key, slot)
