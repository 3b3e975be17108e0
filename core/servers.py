"""An SSH server as the executors see it: what they read of one, and host key
fingerprints. Pure: the `cronium-ssh-server` block (blocks/ssh_server.py) is one such
server, stored in Prefect."""

from __future__ import annotations

import base64
import hashlib
from typing import Protocol

from pydantic import SecretStr

__all__ = ["SSHTarget", "fingerprint"]


def fingerprint(key_blob: bytes) -> str:
    """OpenSSH's SHA256 fingerprint of a public key blob (as `ssh-keygen -l` prints it)."""
    digest = base64.b64encode(hashlib.sha256(key_blob).digest()).decode().rstrip("=")
    return f"SHA256:{digest}"


class SSHTarget(Protocol):
    """Connection settings of one server, with the host key it must present."""

    host: str
    port: int
    username: str
    private_key: SecretStr | None
    key_passphrase: SecretStr | None
    password: SecretStr | None
    connect_timeout: float

    @property
    def address(self) -> str: ...

    def pinned_fingerprint(self) -> str | None: ...

    def connection_key(self) -> str: ...
