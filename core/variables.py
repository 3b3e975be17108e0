"""Variables scripts read and write: the store interface and the interim file store.

Reads see the event owner's scope first, then global; writes go to the owner's scope when
the event has an owner, else global. Concurrent runs writing different keys never lose an
update (read-modify-write under an exclusive lock); for the same key the last write wins.
"""

from __future__ import annotations

import fcntl
import json
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from .settings import get_settings

__all__ = ["Visible", "VariableStore", "FileVariableStore", "get_variable_store"]


@dataclass
class Visible:
    """The variables one run may see, flattened by scope, and which of them are secret."""

    values: dict[str, Any]
    secret_keys: set[str]

    @property
    def secret_values(self) -> list[str]:
        texts = [
            v if isinstance(v, str) else json.dumps(v)
            for k, v in self.values.items()
            if k in self.secret_keys
        ]
        return [t for t in texts if t]


class VariableStore(Protocol):
    def visible(self, owner: str | None) -> Visible: ...

    def write(self, changes: dict[str, Any], owner: str | None) -> None: ...

    def set(self, key: str, value: Any, owner: str | None = None, secret: bool = False) -> None: ...


class FileVariableStore:
    """A JSON file guarded by flock. Interim: the SSH-and-blocks work replaces it with blocks."""

    def __init__(self, path: Path):
        self.path = path

    @contextmanager
    def _locked(self):
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(self.path.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield self._read()
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _read(self) -> dict[str, Any]:
        try:
            return json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {"global": {}, "owners": {}}

    def _save(self, data: dict[str, Any]) -> None:
        temporary = self.path.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps(data), encoding="utf-8")
        os.chmod(temporary, 0o600)
        os.replace(temporary, self.path)

    def _scope(self, data: dict[str, Any], owner: str | None) -> dict[str, Any]:
        return data["global"] if owner is None else data["owners"].setdefault(owner, {})

    def visible(self, owner: str | None) -> Visible:
        data = self._read()
        merged = dict(data["global"])
        if owner is not None:
            merged.update(data["owners"].get(owner, {}))
        return Visible(
            values={k: v["value"] for k, v in merged.items()},
            secret_keys={k for k, v in merged.items() if v.get("secret")},
        )

    def write(self, changes: dict[str, Any], owner: str | None) -> None:
        if not changes:
            return
        with self._locked() as data:
            scope = self._scope(data, owner)
            for key, value in changes.items():
                secret = scope.get(key, {}).get("secret", False)
                scope[key] = {"value": value, "secret": secret}
            self._save(data)

    def set(self, key: str, value: Any, owner: str | None = None, secret: bool = False) -> None:
        with self._locked() as data:
            self._scope(data, owner)[key] = {"value": value, "secret": secret}
            self._save(data)


def get_variable_store() -> VariableStore:
    return FileVariableStore(get_settings().variables_file)
