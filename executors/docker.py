"""Docker backend: a fresh, locked-down container per run attempt, driven with docker-py.

The client comes from the caller (the flows layer reads a prefect-docker `DockerHost`
block when CRONIUM_DOCKER_HOST_BLOCK names one), else from the environment. The container
gets the run's staging directory and nothing else from the host: no other paths, no Docker
socket, no capabilities, no privilege gain, a read-only root filesystem with a private
/tmp, and memory / CPU / process limits.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors
import requests
from docker.models.containers import Container

from cronium_prefect.errors import DockerUnavailable, ExecutorError, ImageNotFound
from cronium_prefect.process import current_identity, is_orphan

from .base import ExecutionRequest, ExecutionResult, Executor, LineSink

__all__ = ["DockerExecutor", "docker_client", "COMMANDS", "MANAGED_LABEL", "RUN_LABEL"]

MOUNT_POINT = "/cronium"
MANAGED_LABEL = "io.cronium.managed"
RUN_LABEL = "io.cronium.run-id"
OWNER_LABEL = "io.cronium.owner"  # the identity (core/process.py) of the process that made it
COMMANDS = {
    "bash": ["bash", "--noprofile", "--norc", f"{MOUNT_POINT}/script.sh"],
    "python": ["python3", "-u", f"{MOUNT_POINT}/script.py"],
    "node": ["node", f"{MOUNT_POINT}/script.js"],
}
_STREAMS = {1: "stdout", 2: "stderr"}
DRAIN_BUFFER_BYTES = 64 * 1024 * 1024  # output read from dockerd, not logged yet


def docker_client(
    make: Callable[[], docker.DockerClient] = docker.from_env, where: str | None = None
) -> docker.DockerClient:
    """A client that answered a ping: from `make` (by default the environment's
    DOCKER_HOST, else the local socket); `where` names it in the error."""
    try:
        client = make()
        client.ping()
        return client
    except docker.errors.DockerException as exc:
        where = where or os.environ.get("DOCKER_HOST") or "the local Docker socket"
        raise DockerUnavailable(
            f"cannot reach the Docker daemon through {where}: {_reason(exc)}. "
            "Is dockerd running, and may this user use it?"
        ) from None


def _reason(exc: Exception) -> str:
    """The daemon's own words, without docker-py's URL and status preamble."""
    explanation = getattr(exc, "explanation", None)
    text = str(explanation or exc)
    return text.split("(Caused by")[0].strip() if "Caused by" in text else text


class _Backlog:
    """Frames read but not logged yet, between the drain thread and the logging one. Over
    `limit` bytes the drain waits: a script that prints faster than lines can be logged is
    slowed down then, rather than the worker's memory growing without bound."""

    _END = object()

    def __init__(self, limit: int):
        self.limit, self.size = limit, 0
        self.items: deque = deque()
        self.changed = threading.Condition()
        self.abandoned = False  # the logging side stopped reading (it raised)

    def fill_from(self, frames: Any) -> None:
        try:
            for frame in frames:
                weight = sum(len(part) for part in frame if part)
                with self.changed:
                    self.changed.wait_for(lambda: self.size < self.limit or self.abandoned)
                    if self.abandoned:
                        return
                    self.items.append(frame)
                    self.size += weight
                    self.changed.notify_all()
            end: Any = self._END
        except BaseException as exc:  # the daemon failed mid-stream: raised by the reader
            end = exc
        with self.changed:
            self.items.append(end)
            self.changed.notify_all()

    def abandon(self) -> None:
        with self.changed:
            self.abandoned = True
            self.changed.notify_all()

    def __iter__(self):
        while True:
            with self.changed:
                self.changed.wait_for(lambda: self.items)
                item = self.items.popleft()
                if isinstance(item, tuple):
                    self.size -= sum(len(part) for part in item if part)
                self.changed.notify_all()
            if item is self._END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item


@dataclass
class _Run:
    container: Container
    frames: Any  # the attach stream, opened before start so no output is missed
    watcher: _OutWatcher | None = None


class _OutWatcher(threading.Thread):
    """The run's out/ is a host directory the script can write: watch its size (apparent,
    so a sparse file counts whole) and its number of entries (empty files and directories
    cost inodes), and stop the container when either outgrows what the protocol can ever
    need (disk protection). Each look stops at the limit, so it stays cheap."""

    INTERVAL_S = 0.2

    def __init__(self, directory: Path, limit: int, max_files: int, container: Container):
        super().__init__(daemon=True, name="cronium-out-watcher")
        self.directory, self.limit, self.max_files = directory, limit, max_files
        self.container = container
        self.stopped = threading.Event()
        self.overflow: str | None = None  # what it outgrew, said for the run's error
        self.killed = False

    def run(self) -> None:
        while not self.stopped.wait(self.INTERVAL_S):
            if self.look():
                self.killed = True
                try:
                    self.container.kill()
                except docker.errors.APIError:
                    pass  # it ended meanwhile
                return

    def look(self) -> bool:
        """Whether out/ has outgrown a limit (said in `overflow`)."""
        if self.overflow is None:
            size, count = _tree_size(self.directory, self.limit, self.max_files)
            if size > self.limit:
                self.overflow = (
                    f"the script wrote over {size} bytes into its output directory "
                    f"(limit {self.limit})"
                )
            elif count > self.max_files:
                self.overflow = (
                    f"the script made over {self.max_files} files and directories in its "
                    "output directory (CRONIUM_OUT_MAX_FILES)"
                )
        return self.overflow is not None


def _tree_size(directory: Path, stop_above: int, max_entries: int) -> tuple[int, int]:
    """(apparent bytes, entries) under `directory`, counted until either passes its limit."""
    total, count, pending = 0, 0, [directory]
    while pending and total <= stop_above and count <= max_entries:
        try:
            with os.scandir(pending.pop()) as entries:
                for entry in entries:
                    count += 1
                    if entry.is_dir(follow_symlinks=False):
                        pending.append(Path(entry.path))
                    else:
                        total += entry.stat(follow_symlinks=False).st_size
                    if count > max_entries or total > stop_above:
                        break
        except OSError:
            continue  # removed while we looked
    return total, count


class DockerExecutor(Executor[_Run]):
    """Runs scripts in fresh containers. One instance may serve many runs concurrently."""

    def __init__(
        self,
        client: docker.DockerClient | None = None,
        *,
        user: str = "65534:65534",
        pull: str = "missing",
    ):
        """`user` runs the scripts (uid:gid); `pull` is `missing` or `never` (an image
        not present is then an error): CRONIUM_DOCKER_USER and CRONIUM_DOCKER_PULL."""
        self.client = client or docker_client()
        self.owner = current_identity()
        self.user, self.pull = user, pull

    def run(self, request: ExecutionRequest) -> ExecutionResult:
        try:
            return super().run(request)
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            # The daemon went away mid-run: a clear failure, not a crashed flow.
            raise DockerUnavailable(
                f"the Docker daemon failed during the run: {_reason(exc)}"
            ) from None

    def reap_orphans(self) -> None:
        """Remove containers left by a process of this host that died mid-run."""
        # Sparse: the listing's own labels. A full listing inspects each container, and
        # one removed meanwhile by its run (other runs go on beside this) raised NotFound.
        listed = self.client.containers.list(
            all=True, sparse=True, filters={"label": MANAGED_LABEL}
        )
        for container in listed:
            labels = container.attrs.get("Labels") or {}
            if is_orphan(labels.get(OWNER_LABEL, "")):
                try:
                    container.remove(force=True)
                except docker.errors.APIError:
                    pass  # already gone, or being removed by someone else

    def _pull_missing(self, image: str) -> None:
        """Called only after the daemon said the image is absent: a present one is never pulled."""
        if self.pull == "never":
            raise ImageNotFound(
                f"image {image!r} is not present locally and pulling is off "
                "(CRONIUM_DOCKER_PULL=never); build or load it first"
            )
        try:
            self.client.images.pull(image)
        except docker.errors.DockerException as exc:
            raise ImageNotFound(
                f"image {image!r} is not present locally and could not be pulled: {_reason(exc)}"
            ) from None

    def _create(self, image: str, **options: Any) -> Container:
        # Create first and pull only on "no such image": one API call fewer per run.
        for first_try in (True, False):
            try:
                return self.client.containers.create(image, **options)
            except docker.errors.ImageNotFound:
                if not first_try:
                    raise ImageNotFound(f"image {image!r} vanished right after its pull") from None
                self._pull_missing(image)
            except docker.errors.APIError as exc:
                if exc.status_code == 400 and "reference format" in str(_reason(exc)):
                    raise ImageNotFound(
                        f"image {image!r} is not a valid image name: {_reason(exc)}"
                    ) from None
                raise ExecutorError(f"cannot create the container: {_reason(exc)}") from None
            except docker.errors.DockerException as exc:
                raise ExecutorError(f"cannot create the container: {_reason(exc)}") from None
        raise AssertionError("unreachable")

    def start(self, request: ExecutionRequest) -> _Run:
        limits = request.limits
        assert limits is not None, "the flow resolves limits before calling the executor"
        env = {
            **request.env,
            "CRONIUM_DIR": MOUNT_POINT,
            "CRONIUM_OUTPUT_LIMIT": str(request.output_limit),
            "PYTHONPATH": f"{MOUNT_POINT}/lib",
            "PYTHONUNBUFFERED": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
            "NODE_PATH": f"{MOUNT_POINT}/lib",
            "BASH_ENV": f"{MOUNT_POINT}/lib/cronium.sh",
            "HOME": "/tmp",
        }
        staging = str(request.staging.root)
        container = self._create(
            request.image,
            command=COMMANDS[request.language],
            user=self.user,
            environment=env,
            working_dir="/tmp",
            labels={
                **request.labels,
                MANAGED_LABEL: "true",
                RUN_LABEL: request.run_id,
                OWNER_LABEL: self.owner,
            },
            volumes={
                staging: {"bind": MOUNT_POINT, "mode": "ro"},
                f"{staging}/out": {"bind": f"{MOUNT_POINT}/out", "mode": "rw"},
            },
            read_only=True,
            tmpfs={"/tmp": f"rw,exec,nosuid,nodev,size={limits.tmpfs_size}"},
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            mem_limit=limits.memory,
            memswap_limit=limits.memory,  # no swap: the memory limit is the limit
            nano_cpus=int(limits.cpus * 1e9),
            pids_limit=limits.pids,
            network_mode=limits.network,
            init=True,  # reaps zombies and forwards signals to the script
            stdin_open=False,
            tty=False,
        )
        try:
            # Attached before start, so the stream sees every byte: dockerd registers the
            # attach before it answers the request. No `logs=True`: its replay of the log
            # file raced the live stream and could deliver the first line twice.
            frames = self.client.api.attach(
                container.id, stdout=True, stderr=True, stream=True, logs=False, demux=True
            )
            container.start()
        except docker.errors.DockerException as exc:
            container.remove(force=True)
            raise ExecutorError(f"cannot start the container: {_reason(exc)}") from None
        limit = max(4 * request.output_limit, 4 * 1024 * 1024)
        watcher = _OutWatcher(request.staging.root / "out", limit, request.out_max_files, container)
        watcher.start()
        return _Run(container, frames, watcher)

    def stream(self, handle: _Run, sink: LineSink) -> None:
        # The attach socket is drained on a thread of its own, as fast as dockerd sends, and
        # the lines are logged from here. Read at the pace of logging (slow on a busy host),
        # the container could exit with its output still queued in dockerd, and on a loaded
        # machine the end of it was lost (the last 128 of 20,000 lines, in a test run).
        frames = _Backlog(DRAIN_BUFFER_BYTES)
        drainer = threading.Thread(
            target=frames.fill_from, args=(handle.frames,), daemon=True, name="cronium-drain"
        )
        drainer.start()
        try:
            for stdout, stderr in frames:
                if stdout:
                    sink.feed("stdout", stdout)
                if stderr:
                    sink.feed("stderr", stderr)
        finally:
            frames.abandon()

    def wait(self, handle: _Run) -> int | None:
        return int(handle.container.wait()["StatusCode"])

    def kill(self, handle: _Run) -> None:
        try:
            handle.container.kill()
        except docker.errors.APIError:
            pass  # it ended on its own meanwhile

    def collect(self, handle: _Run, result: ExecutionResult) -> None:
        if handle.watcher is not None:
            handle.watcher.stopped.set()
            handle.watcher.look()  # once more: the script may have ended between two looks
            if handle.watcher.overflow is not None:
                ending = "it was stopped" if handle.watcher.killed else "nothing was kept"
                result.error = f"{handle.watcher.overflow}; {ending}"
                return
        if result.exit_code == 0:
            return  # an OOM kill never exits 0; skip the inspect call
        handle.container.reload()
        state = handle.container.attrs.get("State", {})
        if state.get("OOMKilled") and not result.timed_out:
            result.oom_killed = True
            result.error = "out of memory: the script was killed at its memory limit"

    def cleanup(self, handle: _Run) -> None:
        if handle.watcher is not None:
            handle.watcher.stopped.set()
        try:
            handle.container.remove(force=True)
        except docker.errors.NotFound:
            pass
