"""Host side of the helper protocol: lay out a run's directory, read back what the script set.

A run's directory (mounted at /cronium in a container, uploaded over SSH):

    lib/      cronium.py, cronium.js, cronium.sh         read-only for the script
    in/       input.json, event.json, variables.json,    read-only for the script
              vars/<KEY> (text form for bash)
    out/      output.json | output.txt, condition,       the only place the script writes
              vars/<KEY>.json | <KEY>.txt
    script.sh | script.py | script.js

`.json` files come from the Python/Node helpers (already JSON); `.txt` files come from bash
and hold text that is read as JSON when it parses, else kept as a string.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import stat
import tempfile
import uuid
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from cronium_prefect.caps import NestedTooDeep, load_json
from cronium_prefect.errors import HelperProtocolError
from cronium_prefect.process import current_identity, is_orphan
from cronium_prefect.variables import VALUE_LIMIT, check_key, check_value

__all__ = [
    "Staging",
    "Collected",
    "HELPER_FILES",
    "SCRIPT_NAMES",
    "parse_text_value",
    "remove_tree",
]

HELPER_FILES = ("cronium.py", "cronium.js", "cronium.sh")
SCRIPT_NAMES = {"bash": "script.sh", "python": "script.py", "node": "script.js"}
# No symlinks, and no blocking on a FIFO the script may have planted.
_PRIVATE_OPEN = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)


def parse_text_value(text: str, what: str = "the value") -> Any:
    """JSON when it parses, else the text itself — the rule for bash and `cronium var set`;
    NestedTooDeep when it is JSON nested too deep."""
    try:
        return load_json(text, what)
    except NestedTooDeep:
        raise
    except ValueError:
        return text


def _helper_source(name: str) -> bytes:
    return resources.files("cronium_prefect.runtime_helpers").joinpath(name).read_bytes()


@dataclass
class Collected:
    """What the script handed back through the helpers."""

    output: Any = None
    has_output: bool = False
    condition: bool = False
    variables: dict[str, Any] = field(default_factory=dict)
    error: str | None = None  # a bad output or condition: the variables are kept all the same


@dataclass
class Staging:
    """One run attempt's private directory on the host running the executor."""

    root: Path
    language: str

    @classmethod
    def create(
        cls,
        parent: Path,
        language: str,
        script: str,
        input_data: Any,
        event_meta: dict[str, Any],
        variables: dict[str, Any],
        writer_uid: int | None = None,
    ) -> Staging:
        """Lay out a fresh directory. `writer_uid`: the uid the script runs as, given `out/`."""
        parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(parent, 0o700)  # nobody but the worker's user reaches any run's files
        # The name carries the owner (host/pid/ticks -> pid-ticks) so `reap_orphans` can tell.
        _, pid, ticks = current_identity().split("/")
        root = Path(tempfile.mkdtemp(prefix=f"run-{pid}-{ticks}-", dir=parent))
        os.chmod(root, 0o755)
        staging = cls(root, language)
        for sub in ("lib", "in", "in/vars", "out", "out/vars"):
            (root / sub).mkdir(mode=0o755)
        for name in HELPER_FILES:
            (root / "lib" / name).write_bytes(_helper_source(name))
        (root / SCRIPT_NAMES[language]).write_text(script, encoding="utf-8")
        (root / "in" / "input.json").write_text(json.dumps(input_data), encoding="utf-8")
        (root / "in" / "event.json").write_text(json.dumps(event_meta), encoding="utf-8")
        (root / "in" / "variables.json").write_text(json.dumps(variables), encoding="utf-8")
        for key, value in variables.items():
            text = value if isinstance(value, str) else json.dumps(value)
            (root / "in" / "vars" / key).write_text(text, encoding="utf-8")
        for path in root.rglob("*"):
            os.chmod(path, 0o755 if path.is_dir() else 0o644)
        staging._give_out_dir(writer_uid)
        return staging

    def _give_out_dir(self, uid: int | None) -> None:
        out_dirs = [self.root / "out", self.root / "out" / "vars"]
        for path in out_dirs:
            try:
                if uid is None:
                    raise PermissionError
                os.chown(path, uid, -1)
                os.chmod(path, 0o700)
            except PermissionError:
                # Not root: the run's root above is 0700-parented, so only the container
                # (whose mount starts below that parent) reaches this directory anyway.
                os.chmod(path, 0o777)

    @property
    def script_name(self) -> str:
        return SCRIPT_NAMES[self.language]

    def collect(self, output_limit: int, max_variables: int = 100) -> Collected:
        """Read back output, condition and variable writes. A bad output or condition is
        `Collected.error` (the variable writes still count); bad variables are
        HelperProtocolError, and then none is kept.

        The script owns `out/`, so every path is opened without following symlinks: a
        link planted there must not make the worker read its own files.
        """
        out = self.root / "out"
        collected = Collected()
        problems = []
        for read in (self._read_output, self._read_condition):
            try:
                read(out, output_limit, collected)
            except HelperProtocolError as exc:
                problems.append(str(exc))
        collected.error = "; ".join(problems) or None
        vars_dir = out / "vars"
        if vars_dir.is_symlink():
            raise HelperProtocolError("out/vars was replaced by a link; variables not saved")
        written = sorted(vars_dir.iterdir()) if vars_dir.is_dir() else []
        if len(written) > max_variables:
            raise HelperProtocolError(
                f"the script wrote {len(written)} variables, over the limit of {max_variables} "
                "a run (CRONIUM_MAX_VARIABLE_WRITES); none was saved"
            )
        for path in written:
            key, _, suffix = path.name.rpartition(".")
            if suffix not in ("json", "txt"):
                raise HelperProtocolError(f"unexpected file out/vars/{path.name}")
            text = _read_private(path, 4 * VALUE_LIMIT, f"variable {key}")
            value = _decode(text or "", suffix == "json", f"variable {key}")
            try:  # the same rules the variable store applies, checked before anything is saved
                check_value(check_key(key), value)
            except ValueError as exc:
                raise HelperProtocolError(f"out/vars/{path.name}: {exc}") from None
            collected.variables[key] = value
        return collected

    @staticmethod
    def _read_output(out: Path, output_limit: int, collected: Collected) -> None:
        for name, is_json in (("output.json", True), ("output.txt", False)):
            text = _read_private(out / name, output_limit, "output")
            if text is not None:
                collected.output = _decode(text, is_json, "output")
                collected.has_output = True

    @staticmethod
    def _read_condition(out: Path, output_limit: int, collected: Collected) -> None:
        text = _read_private(out / "condition", 16, "condition")
        if text is not None:
            if text.strip() not in ("true", "false"):
                raise HelperProtocolError(f"condition file holds {text[:16]!r}, not true/false")
            collected.condition = text.strip() == "true"

    def remove(self) -> None:
        remove_tree(self.root)

    @staticmethod
    def reap_orphans(parent: Path) -> int:
        """Remove run directories whose process died mid-run; returns how many."""
        host = socket.gethostname()
        removed = 0
        for path in parent.glob("run-*-*-*") if parent.is_dir() else []:
            _, pid, ticks, _ = path.name.split("-", 3)
            if is_orphan(f"{host}/{pid}/{ticks}"):
                remove_tree(path)
                removed += 1
        return removed


def remove_tree(top: Path) -> None:
    """Remove a directory tree a script may have shaped: never following links, and
    without recursion or long paths (shutil.rmtree recurses, and a tree 1,500 deep raised
    RecursionError). Each subdirectory is first moved up beside the others under `top`, so
    no path grows deeper than two levels. Errors are ignored, as rmtree's were."""
    if top.is_symlink() or not top.is_dir():
        return
    token, moved = uuid.uuid4().hex[:8], 0
    pending = [top]
    while pending:
        folder = pending.pop()
        try:
            with os.scandir(folder) as entries:
                names = [(e.name, e.is_dir(follow_symlinks=False)) for e in entries]
        except OSError:
            continue
        for name, is_dir in names:
            try:
                if is_dir:
                    moved += 1
                    flat = top / f".remove-{token}-{moved}"
                    os.rename(folder / name, flat)
                    pending.append(flat)
                else:
                    os.unlink(folder / name)
            except OSError:
                pass
        if folder != top:  # emptied: its files unlinked, its folders moved up
            try:
                folder.rmdir()
            except OSError:
                pass
    try:
        top.rmdir()
    except OSError:
        pass


def _read_private(path: Path, limit: int, what: str) -> str | None:
    """The file's text, or None if absent; refuses links, non-files and sizes over `limit`."""
    try:
        fd = os.open(
            path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
        )
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # O_NOFOLLOW met a link
            raise HelperProtocolError(
                f"{what}: {path.name} is a link; links are never followed"
            ) from None
        raise HelperProtocolError(f"{what}: cannot read {path.name} ({exc.strerror})") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise HelperProtocolError(f"{what}: {path.name} is not a regular file")
        if info.st_size > limit:
            raise HelperProtocolError(
                f"{what} is {info.st_size} bytes, over the limit of {limit} bytes; nothing was kept"
            )
        data = handle.read(limit + 1)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise HelperProtocolError(f"{what}: {path.name} is not UTF-8 text") from None


def _decode(text: str, is_json: bool, what: str) -> Any:
    try:
        return load_json(text, what) if is_json else parse_text_value(text, what)
    except NestedTooDeep as exc:
        raise HelperProtocolError(str(exc)) from None
    except ValueError as exc:
        raise HelperProtocolError(f"{what}: not valid JSON ({exc})") from None
