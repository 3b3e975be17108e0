"""A real OpenSSH server on 127.0.0.1 for tests: temporary host key, a test user with a key
and a password, started and stopped on demand."""

from __future__ import annotations

import fcntl
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.ports import free_port

SSHD = "/usr/sbin/sshd"
# A user of its own per pytest-xdist worker: its home holds the runs' directories, which
# each worker's session starts empty and its tests count.
_XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER")
USER = f"cronium-ssh-{_XDIST_WORKER}" if _XDIST_WORKER else "cronium-ssh"
PASSWORD = "pw-Cr0nium-test"


def ensure_user() -> pwd.struct_passwd:
    # useradd and chpasswd lock /etc/passwd and fail at once when another worker holds it.
    with open("/run/cronium-tests-accounts.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            pwd.getpwnam(USER)
        except KeyError:
            subprocess.run(["useradd", "--create-home", "--shell", "/bin/bash", USER], check=True)
        subprocess.run(["chpasswd"], input=f"{USER}:{PASSWORD}\n", text=True, check=True)
        return pwd.getpwnam(USER)


@contextmanager
def login_shell(shell: str) -> Iterator[None]:
    """The test user's login shell for a while (e.g. /bin/sh, dash on Debian): what runs
    the commands the server is sent. One xdist worker's modules run one after another."""
    previous = ensure_user().pw_shell
    with open("/run/cronium-tests-accounts.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        subprocess.run(["usermod", "--shell", shell, USER], check=True)
    try:
        yield
    finally:
        with open("/run/cronium-tests-accounts.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            subprocess.run(["usermod", "--shell", previous, USER], check=True)


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)


@dataclass
class Sshd:
    directory: Path
    port: int
    process: subprocess.Popen | None = None

    @classmethod
    def create(cls, directory: Path, extra_config: str = "", sftp: bool = True) -> Sshd:
        """Without `sftp`, no `Subsystem sftp` line: a hardened or embedded server."""
        account = ensure_user()
        directory.mkdir(parents=True, exist_ok=True)
        _keygen(directory / "host_key")
        _keygen(directory / "client_key")
        # The test user is ours: start every session from an empty run area.
        # rm, not shutil.rmtree: a script's tree thousands of levels deep (the collection
        # tests make one) is past Python's recursion limit.
        subprocess.run(["rm", "-rf", "--", str(Path(account.pw_dir) / ".cronium")], check=False)
        ssh_dir = Path(account.pw_dir) / ".ssh"
        ssh_dir.mkdir(mode=0o700, exist_ok=True)
        authorized = ssh_dir / "authorized_keys"
        public = (directory / "client_key.pub").read_text()
        existing = authorized.read_text() if authorized.exists() else ""
        authorized.write_text(existing + public)
        for path in (ssh_dir, authorized):
            os.chown(path, account.pw_uid, account.pw_gid)
        os.chmod(authorized, 0o600)
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        sshd = cls(directory, free_port())
        (directory / "sshd_config").write_text(
            f"Port {sshd.port}\nListenAddress 127.0.0.1\nHostKey {directory / 'host_key'}\n"
            f"PidFile {directory / 'sshd.pid'}\nAuthorizedKeysFile .ssh/authorized_keys\n"
            "PasswordAuthentication yes\nKbdInteractiveAuthentication no\nUsePAM no\n"
            f"PermitRootLogin no\nAllowUsers {USER}\n"
            + ("Subsystem sftp internal-sftp\n" if sftp else "")
            + "MaxStartups 100:30:200\nMaxSessions 20\nLogLevel ERROR\n"
            + extra_config
        )
        sshd.start()
        return sshd

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                SSHD,
                "-D",
                "-f",
                str(self.directory / "sshd_config"),
                "-E",
                str(self.directory / "sshd.log"),
            ],
            start_new_session=True,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"sshd did not listen on {self.port}: {self.log()}")

    def stop(self) -> None:
        """Stop the listener and every connection it serves, like a server going away."""
        if self.process is None:
            return
        for pid in _descendants(self.process.pid) + [self.process.pid]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait(timeout=10)
        self.process = None

    def log(self) -> str:
        path = self.directory / "sshd.log"
        return path.read_text() if path.exists() else ""

    @property
    def host_key_line(self) -> str:
        kind, blob, *_ = (self.directory / "host_key.pub").read_text().split()
        return f"{kind} {blob}"

    @property
    def client_key(self) -> str:
        return (self.directory / "client_key").read_text()

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, queue = [], [pid]
    while queue:
        for child in children.get(queue.pop(), []):
            found.append(child)
            queue.append(child)
    return found


def processes_of_user() -> list[str]:
    """Command lines of the test user's processes (sshd's own excluded)."""
    done = subprocess.run(["ps", "-u", USER, "-o", "pid=,args="], capture_output=True, text=True)
    return [line.strip() for line in done.stdout.splitlines() if "sshd" not in line]


def run_directories() -> list[str]:
    runs = Path(pwd.getpwnam(USER).pw_dir) / ".cronium" / "runs"
    return sorted(p.name for p in runs.iterdir()) if runs.exists() else []
