"""`cronium-email`: a Prefect notification block that sends mail over SMTP.

Prefect's own notification blocks cover Slack, Discord, Teams and generic webhooks, and
prefect-email's credentials block needs a separate task to send; this block makes email
one more `NotificationBlock`, so `send_message` treats every channel the same way.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from typing import Literal

import anyio
from prefect.blocks.abstract import NotificationBlock
from pydantic import Field, SecretStr

__all__ = ["CroniumEmail"]


class CroniumEmail(NotificationBlock):
    """Sends each notification as an email through an SMTP server. Documented in
    docs/actions.md (messages).

    Example:
        ```python
        from cronium_prefect.blocks import CroniumEmail

        email = CroniumEmail.load("BLOCK_NAME")
        email.notify("The nightly report is ready.")
        ```
    """

    _block_type_name = "Cronium Email"
    _block_type_slug = "cronium-email"
    _description = "Email over SMTP for Cronium messages (and any Prefect notification)."

    smtp_host: str = Field(description="SMTP server host name or address.")
    smtp_port: int = Field(default=587, ge=1, le=65535, description="SMTP server port.")
    security: Literal["starttls", "ssl", "none"] = Field(
        default="starttls",
        description="starttls (port 587), ssl (implicit TLS, port 465) or none (plain).",
    )
    username: str | None = Field(default=None, description="Login user, if the server needs one.")
    password: SecretStr | None = Field(default=None, description="Login password.")
    from_address: str = Field(description="The sender, e.g. cronium@example.com.")
    to_addresses: list[str] = Field(min_length=1, description="Recipients.")
    timeout: float = Field(default=30.0, gt=0, description="Seconds to wait for the server.")

    def _send(self, body: str, subject: str | None) -> None:
        message = EmailMessage()
        message["From"] = self.from_address
        message["To"] = ", ".join(self.to_addresses)
        # A header cannot hold line breaks; a rendered subject often ends with one.
        message["Subject"] = " ".join((subject or "").split())
        message.set_content(body)
        context = ssl.create_default_context()
        if self.security == "ssl":
            server: smtplib.SMTP = smtplib.SMTP_SSL(
                self.smtp_host, self.smtp_port, timeout=self.timeout, context=context
            )
        else:
            server = smtplib.SMTP(self.smtp_host, self.smtp_port, timeout=self.timeout)
        with server:
            if self.security == "starttls":
                server.starttls(context=context)
            if self.username:
                password = self.password.get_secret_value() if self.password else ""
                server.login(self.username, password)
            server.send_message(message)

    async def notify(self, body: str, subject: str | None = None) -> None:
        # Unlike Prefect's apprise blocks this always raises on failure: the caller
        # records and retries deliveries.
        await anyio.to_thread.run_sync(self._send, body, subject)
