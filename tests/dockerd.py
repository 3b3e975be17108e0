"""A private Docker daemon for the tests that stop one: its own socket, data and exec root,
containerd and network namespace, the test image loaded into it. Stopping it leaves the
machine's dockerd, and every other test running beside, untouched."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class PrivateDockerd:
    directory: Path
    command: list[str]
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.directory / 'docker.sock'}"

    @classmethod
    def create(cls, image: str) -> PrivateDockerd:
        # Short: a unix socket path is limited to 108 bytes.
        directory = Path(tempfile.mkdtemp(prefix="cr-dockerd-", dir="/tmp"))
        # In a network namespace of its own: a daemon sets up (and, with `--bridge none`,
        # deletes) the `docker0` bridge, which the machine's dockerd needs. Its socket is a
        # file, reachable from here all the same.
        command = [
            "unshare", "--net", "--",
            "dockerd",
            "--host", f"unix://{directory / 'docker.sock'}",
            "--data-root", str(directory / "data"),
            "--exec-root", str(directory / "exec"),
            "--pidfile", str(directory / "dockerd.pid"),
        ]  # fmt: skip
        daemon = cls(directory, command)
        try:
            daemon.start()
        except RuntimeError:
            daemon.remove()
            raise
        saved = subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE)
        loaded = subprocess.run(
            ["docker", "--host", daemon.url, "load", "--quiet"],
            stdin=saved.stdout,
            capture_output=True,
            text=True,
        )
        saved.stdout.close()
        if saved.wait() != 0 or loaded.returncode != 0:
            daemon.remove()
            raise RuntimeError(f"could not load {image} into the private dockerd: {loaded.stderr}")
        return daemon

    def start(self, timeout: float = 60) -> None:
        log = open(self.directory / "dockerd.log", "a")
        self.process = subprocess.Popen(
            self.command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while not self.answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the private dockerd did not start:\n{self.log()[-3000:]}")
            time.sleep(0.2)

    def answers(self) -> bool:
        done = subprocess.run(["docker", "--host", self.url, "version"], capture_output=True)
        return done.returncode == 0

    def log(self) -> str:
        return (self.directory / "dockerd.log").read_text(errors="replace")

    def remove(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        # The data root holds overlay mounts only while the daemon runs; it is down now.
        subprocess.run(["umount", "-R", str(self.directory / "exec")], capture_output=True)
        shutil.rmtree(self.directory, ignore_errors=True)
