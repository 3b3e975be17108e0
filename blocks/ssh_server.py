"""The `cronium-ssh-server` block: an SSH target for remote events."""

from __future__ import annotations

import base64
import hashlib
import json

from prefect.blocks.core import Block
from pydantic import Field, SecretStr, field_validator

from cronium_prefect.servers import fingerprint

__all__ = ["SSHServer"]


class SSHServer(Block):
    """An SSH server Cronium runs remote events on, with the host key it must present.
    Documented in docs/ssh.md; `cronium server add` makes one.

    Example:
        ```python
        from cronium_prefect.blocks import SSHServer

        server = SSHServer.load("BLOCK_NAME")
        ```
    """

    _block_type_name = "Cronium SSH Server"
    _block_type_slug = "cronium-ssh-server"
    _description = "An SSH target for Cronium remote events: address, credentials, pinned host key."

    host: str = Field(description="Host name or IP address of the server.")
    port: int = Field(default=22, ge=1, le=65535, description="SSH port.")
    username: str = Field(description="User the scripts run as.")
    private_key: SecretStr | None = Field(
        default=None, description="Private key (OpenSSH or PEM text) for key authentication."
    )
    key_passphrase: SecretStr | None = Field(
        default=None, description="Passphrase of the private key, if it has one."
    )
    password: SecretStr | None = Field(
        default=None, description="Password, for password authentication."
    )
    host_key: str | None = Field(
        default=None,
        description="The host key the server must present: `TYPE BASE64` (a known_hosts "
        "entry without the host) or its `SHA256:...` fingerprint. Unset: connections are "
        "refused until the key is trusted (`cronium server add --trust-host-key`).",
    )
    connect_timeout: float = Field(
        default=10.0, gt=0, le=300, description="Seconds to wait for the connection."
    )
    description: str = Field(default="", description="What this server is for.")

    @field_validator("host_key")
    @classmethod
    def _host_key_form(cls, value: str | None) -> str | None:
        if value is None or value.startswith("SHA256:"):
            return value
        parts = value.split()
        if len(parts) < 2:
            raise ValueError("host_key must be `TYPE BASE64` or a `SHA256:` fingerprint")
        try:
            base64.b64decode(parts[1], validate=True)
        except ValueError:
            raise ValueError("host_key's key part is not base64") from None
        return f"{parts[0]} {parts[1]}"

    @property
    def address(self) -> str:
        return f"{self.username}@{self.host}:{self.port}"

    def pinned_fingerprint(self) -> str | None:
        if self.host_key is None:
            return None
        if self.host_key.startswith("SHA256:"):
            return self.host_key
        return fingerprint(base64.b64decode(self.host_key.split()[1]))

    def connection_key(self) -> str:
        """Identifies the connection settings (secrets included): the pool's key."""
        raw = {
            name: value.get_secret_value() if isinstance(value, SecretStr) else value
            for name, value in ((n, getattr(self, n)) for n in type(self).model_fields)
            if name != "description"
        }
        return hashlib.sha256(json.dumps(raw, sort_keys=True, default=str).encode()).hexdigest()
