"""Moving a run's files to and from an SSH server: over SFTP when the server offers it,
else over exec channels (a tar stream in, a framed stream of `out/` back), for hardened
OpenSSH without `Subsystem sftp`, dropbear and BusyBox systems.

Both ways keep the same rules: the run directory and all in it are private (0700/0600),
only regular files with the helper protocol's names are read back, never a link or a
FIFO, each at most `limit` bytes (a bigger one is reported by its size, not read), and
every request is under a deadline.
"""

from __future__ import annotations

import io
import re
import shlex
import stat
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path, PurePosixPath

import paramiko

from cronium_prefect.errors import HelperProtocolError

from .base import ExecutionRequest
from .ssh_pool import posix

__all__ = [
    "RemoteFiles",
    "SftpFiles",
    "ExecFiles",
    "open_files",
    "read_frame",
    "COLLECT_TIMEOUT_S",
]

COLLECT_TIMEOUT_S = 30.0  # for each request while the script's files are read back
OUT_NAME = re.compile(r"^(output\.json|output\.txt|condition|[A-Z_][A-Z0-9_]{0,99}\.(json|txt))$")
_LOCAL_LAYOUT = ("lib", "in", "in/vars")
_DIRECTORIES = (*_LOCAL_LAYOUT, "out", "out/vars")
_OUT_DIRS = ("out", "out/vars")
_REPLACED = "{} was replaced by a link or a file; nothing kept"
_MARK = "CRONIUM-FILES"  # where our answer starts, after anything a login script printed
_NAME = r"(out(?:/vars)?/[A-Za-z0-9_][A-Za-z0-9_.]{0,127})"  # no `/`, no leading `.`
_REPLACED_FRAME = re.compile(r"^R (out(?:/vars)?)$")
_FILE_FRAME = re.compile(rf"^F (\d{{1,15}}) {_NAME}$")
_ENTRY_FRAME = re.compile(rf"^([LNUS]) {_NAME}$")


def run_files(request: ExecutionRequest) -> list[tuple[str, bytes]]:
    """Every file of a run's directory, by its path in it: helpers, input and variables,
    the script, the runner and the env file (`export KEY='quoted'` lines)."""
    local = request.staging.root
    files = [
        (f"{sub}/{path.name}", path.read_bytes())
        for sub in _LOCAL_LAYOUT
        for path in sorted((local / sub).iterdir())
        if path.is_file()
    ]
    script = request.staging.script_name
    files.append((script, (local / script).read_bytes()))
    runner = resources.files("cronium_prefect.runtime_helpers").joinpath("runner.sh")
    files.append(("runner.sh", runner.read_bytes()))
    env = {**request.env, "CRONIUM_OUTPUT_LIMIT": str(request.output_limit)}
    lines = "".join(f"export {key}={shlex.quote(value)}\n" for key, value in env.items())
    files.append(("env", lines.encode()))
    return files


class RemoteFiles:
    """One run's file transfers on one connection."""

    kind = ""

    def create(
        self, remote_dir: str, name: str, request: ExecutionRequest, made: Callable[[str], None]
    ) -> str:
        """Make the run directory `name` under `remote_dir` (relative: to the home) with
        every file of the run; its absolute path. `made(path)` as soon as it exists, so
        that a failed upload is removed with the run."""
        raise NotImplementedError

    def touch(self, directory: str) -> None:
        """Renew the run's lease (its directory's modification time)."""
        raise NotImplementedError

    def fetch_out(self, directory: str, local_out: Path, limit: int) -> None:
        """Copy the protocol's regular files of `out/` and `out/vars/` into `local_out`
        (a file over `limit` bytes: a sparse file of its size, for the host to report);
        HelperProtocolError for a link, a non-regular file or a replaced directory."""
        raise NotImplementedError

    def close(self) -> None:
        pass


@dataclass
class SftpFiles(RemoteFiles):
    sftp: paramiko.SFTPClient
    kind = "sftp"

    def create(
        self, remote_dir: str, name: str, request: ExecutionRequest, made: Callable[[str], None]
    ) -> str:
        sftp = self.sftp
        base = PurePosixPath(sftp.normalize("."))
        for part in PurePosixPath(remote_dir).parts:
            base = base / part
            try:
                sftp.mkdir(str(base), mode=0o700)
            except OSError:
                if not stat.S_ISDIR(sftp.stat(str(base)).st_mode):
                    raise
        directory = str(base / name)
        sftp.mkdir(directory, mode=0o700)
        made(directory)
        sftp.chmod(directory, 0o700)
        for sub in _DIRECTORIES:
            sftp.mkdir(f"{directory}/{sub}", mode=0o700)
        for path, data in run_files(request):
            with sftp.open(f"{directory}/{path}", "w") as handle:  # in a 0700 directory
                handle.write(data)
        return directory

    def touch(self, directory: str) -> None:
        try:
            self.sftp.utime(directory, None)
        except FileNotFoundError:
            pass  # the script removed its own directory

    def fetch_out(self, directory: str, local_out: Path, limit: int) -> None:
        # Under a deadline (every SFTP request times out), listed without following links,
        # and only regular files of the protocol's names opened: a FIFO, a device or a link
        # planted in out/ is never opened (opening a FIFO blocks the SFTP server for ever).
        sftp = self.sftp
        sftp.get_channel().settimeout(COLLECT_TIMEOUT_S)
        for sub in _OUT_DIRS:  # real directories, never links to elsewhere
            try:
                mode = sftp.lstat(f"{directory}/{sub}").st_mode or 0
            except FileNotFoundError:
                continue
            if not stat.S_ISDIR(mode):
                raise HelperProtocolError(_REPLACED.format(sub))
        for sub in _OUT_DIRS:
            try:
                # Fully read (bounded: counted before). paramiko's listdir_iter hung at the
                # end of a listing with its read-aheads outstanding.
                entries = sftp.listdir_attr(f"{directory}/{sub}")
            except FileNotFoundError:
                continue  # no vars/ (or the script removed out/ itself)
            for entry in entries:
                name, mode = f"{sub}/{entry.filename}", entry.st_mode or 0
                if not OUT_NAME.match(entry.filename):
                    continue
                _check_regular(name, mode)
                try:
                    self._fetch(f"{directory}/{name}", local_out.parent / name, limit)
                except FileNotFoundError:
                    continue  # gone since the listing

    def _fetch(self, remote: str, target: Path, limit: int) -> None:
        with self.sftp.open(remote, "rb") as handle:
            info = handle.stat()
            if not stat.S_ISREG(info.st_mode or 0):
                return  # devices, FIFOs, directories: never read
            size = info.st_size or 0
            if size > limit:
                _too_big(target, size)
                return
            data = handle.read(limit + 1)
        target.write_bytes(data)

    def close(self) -> None:
        try:
            self.sftp.close()
        except (OSError, EOFError):
            pass


class ExecFiles(RemoteFiles):
    """Files over exec channels: one command makes the directory and unpacks a tar stream
    into it, one reads `out/` back as a framed stream. Needs `tar`, `stat`, `head`."""

    kind = "exec"

    def __init__(self, transport: paramiko.Transport, open_timeout: float):
        self.transport, self.open_timeout = transport, open_timeout

    def create(
        self, remote_dir: str, name: str, request: ExecutionRequest, made: Callable[[str], None]
    ) -> str:
        # One round trip; a failed unpack removes the directory itself. The path comes
        # after a marker: a login script (~/.ssh/rc, .bashrc) may print before us.
        quoted = shlex.quote(name)
        command = (
            f"umask 077 && mkdir -p -- {shlex.quote(remote_dir)} && "
            f"cd -- {shlex.quote(remote_dir)} && base=$(pwd -P) && mkdir -- {quoted} && "
            f'{{ cd -- {quoted} && tar -xf - && echo "{_MARK} $(pwd -P)" || '
            f'{{ rm -rf -- "$base"/{quoted}; exit 1; }}; }}'
        )
        status, out, err = self._run(command, _tarball(request))
        said = out.decode(errors="replace")
        found = re.search(rf"^{_MARK} (/.*)$", said, re.MULTILINE)
        if status != 0 or found is None:
            raise OSError(f"making the run directory failed: {_said(err or out, status)}")
        made(found.group(1))
        return found.group(1)

    def touch(self, directory: str) -> None:
        self._run(f"touch -c -- {shlex.quote(directory)}")

    def fetch_out(self, directory: str, local_out: Path, limit: int) -> None:
        channel = self._open(_read_out_command(directory, limit))
        try:
            stream = channel.makefile("rb")
            while (line := stream.readline(1024)) and line.rstrip(b"\n") != _MARK.encode():
                pass  # what a login script printed before us
            while line := stream.readline(1024):
                read_frame(stream, line.decode(errors="replace").rstrip("\n"), local_out, limit)
            if not channel.status_event.wait(COLLECT_TIMEOUT_S):
                raise TimeoutError(f"no answer within {COLLECT_TIMEOUT_S:g} s")
            if channel.recv_exit_status() != 0:
                raise OSError(f"reading out/ failed: {_said(channel.recv_stderr(2048), -1)}")
        finally:
            channel.close()

    def _open(self, command: str) -> paramiko.Channel:
        channel = self.transport.open_session(timeout=self.open_timeout)
        channel.settimeout(COLLECT_TIMEOUT_S)  # every read and write under the deadline
        channel.exec_command(posix(command))
        return channel

    def _run(self, command: str, data: bytes = b"") -> tuple[int, bytes, bytes]:
        channel = self._open(command)
        try:
            if data:
                channel.sendall(data)
            channel.shutdown_write()
            out = channel.makefile("rb").read(4096)
            if not channel.status_event.wait(COLLECT_TIMEOUT_S):
                raise TimeoutError(f"no answer within {COLLECT_TIMEOUT_S:g} s")
            return channel.recv_exit_status(), out, channel.recv_stderr(2048)
        finally:
            channel.close()


def read_frame(stream, header: str, local_out: Path, limit: int) -> None:
    """One frame of `_read_out_command`; anything else from the server is refused."""
    if found := _REPLACED_FRAME.match(header):
        raise HelperProtocolError(_REPLACED.format(found[1]))
    if found := _FILE_FRAME.match(header):
        name = found[2]
        keep = bool(OUT_NAME.match(name.rsplit("/", 1)[-1]))
        _receive(stream, int(found[1]), name, local_out, limit, keep)
    elif found := _ENTRY_FRAME.match(header):
        kind, name = found[1], found[2]
        if kind == "S":
            raise OSError(f"cannot read {name} on the server (stat failed)")
        if OUT_NAME.match(name.rsplit("/", 1)[-1]):
            if kind == "U":
                raise HelperProtocolError(f"{name} is not readable")
            _check_regular(name, stat.S_IFLNK if kind == "L" else 0)
    else:
        raise OSError(f"unexpected answer while reading out/: {header[:80]!r}")


def _receive(stream, size: int, name: str, local_out: Path, limit: int, keep: bool) -> None:
    target = local_out.parent / name
    if size > limit:
        if keep:
            _too_big(target, size)
    else:
        data = stream.read(size)
        if len(data) != size:
            raise OSError(f"{name} changed while it was read")
        if keep:
            target.write_bytes(data)
    if stream.read(3) != b"\nE\n":  # each file's end: a file that shrank shows here
        raise OSError(f"{name} changed while it was read")


def open_files(transport: paramiko.Transport, open_timeout: float, sftp: bool) -> RemoteFiles:
    """SFTP unless `sftp` is False (the server is known to have none). NoSftp when the
    server refuses the subsystem itself; a session that cannot be opened (a full
    connection, a lost one) is the caller's connection error, never taken for that."""
    if not sftp:
        return ExecFiles(transport, open_timeout)
    channel = transport.open_session(timeout=open_timeout)
    try:
        channel.invoke_subsystem("sftp")
    except (paramiko.SSHException, EOFError) as exc:
        channel.close()
        if transport.is_active():  # the connection is fine: the subsystem is not there
            raise NoSftp(str(exc)) from None
        raise
    return SftpFiles(paramiko.SFTPClient(channel))


class NoSftp(Exception):
    """The server refused the SFTP subsystem on a live connection."""


def _check_regular(name: str, mode: int) -> None:
    if stat.S_ISLNK(mode):
        raise HelperProtocolError(f"{name} is a link; links are never followed")
    if not stat.S_ISREG(mode):
        raise HelperProtocolError(f"{name} is not a regular file")


def _too_big(target: Path, size: int) -> None:
    """Too big to be kept: a sparse file of the same size lets the host report it."""
    with open(target, "wb") as out:
        out.truncate(size)


def _tarball(request: ExecutionRequest) -> bytes:
    buffer, now = io.BytesIO(), time.time()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for sub in _DIRECTORIES:
            info = tarfile.TarInfo(sub)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o700, now
            tar.addfile(info)
        for path, data in run_files(request):
            info = tarfile.TarInfo(path)
            info.size, info.mode, info.mtime = len(data), 0o600, now
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _read_out_command(directory: str, limit: int) -> str:
    """After the marker line, frames, one per entry of out/ and out/vars/: `R dir` (a
    directory replaced: stop), `L name` (a link), `N name` (not a regular file), `U name`
    (unreadable), `S name` (its size unknown: no `stat -c`), `F size name` then the
    file's bytes unless over `limit`, then `\\nE\\n`. Only a regular file whose name
    looks like the protocol's is sent (the caller checks the exact pattern); a name with
    any other character is skipped, so no name holds a newline, a `/` or a space."""
    return (
        f"echo {_MARK}; cd -- {shlex.quote(directory)} 2>/dev/null || exit 0; "
        "for sub in out out/vars; do "
        'if [ -L "$sub" ] || { [ -e "$sub" ] && [ ! -d "$sub" ]; }; then '
        'echo "R $sub"; exit 0; fi; done; '
        "for sub in out out/vars; do "
        '[ -d "$sub" ] || continue; '
        'for f in "$sub"/*; do '
        'n=${f#"$sub"/}; case $n in *[!A-Za-z0-9_.]*) continue;; esac; '
        'if [ -L "$f" ]; then echo "L $f"; '
        'elif [ -f "$f" ]; then '
        "case $n in output.json|output.txt|condition|[A-Z_]*.json|[A-Z_]*.txt) ;; "
        "*) continue;; esac; "
        '[ -r "$f" ] || { echo "U $f"; continue; }; '
        's=$(stat -c %s -- "$f" 2>/dev/null) || { [ -e "$f" ] && { echo "S $f"; exit 1; }; '
        "continue; }; "
        'echo "F $s $f"; '
        f'[ "$s" -gt {int(limit)} ] || head -c "$s" -- "$f"; printf "\\nE\\n"; '
        'elif [ -e "$f" ] && [ "$f" != out/vars ]; then echo "N $f"; fi; '
        "done; done"
    )


def _said(stderr: bytes, status: int) -> str:
    text = stderr.decode(errors="replace").strip()[:500]
    return text or f"exit status {status}"
