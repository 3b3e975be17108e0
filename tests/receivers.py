"""Local stand-ins for the far ends of messages: an HTTP receiver that records every
request (for webhooks, Slack and Discord payloads, HTTP events) and a real SMTP server
(aiosmtpd), both on 127.0.0.1."""

from __future__ import annotations

import datetime
import ipaddress
import json
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


def self_signed(folder: Path) -> Path:
    """A certificate for 127.0.0.1 and its key, in one PEM file (also the CA file a client
    trusts: SSL_CERT_FILE)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path = folder / "receiver.pem"
    path.write_bytes(
        certificate.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class HttpReceiver:
    """Answers every request with `status` and `reply` (JSON, or bytes as they are), and
    records it."""

    status: int = 200
    reply: Any = field(default_factory=lambda: {"ok": True})
    requests: list[Request] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)  # sent with every answer
    certfile: Path | None = None  # serve https with this certificate and key (self_signed)
    host: str = "127.0.0.1"  # e.g. the Docker bridge's gateway, for a worker in a container

    def start(self) -> HttpReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                receiver.requests.append(
                    Request(self.command, self.path, dict(self.headers), self.rfile.read(length))
                )
                reply = receiver.reply
                payload = reply if isinstance(reply, bytes) else json.dumps(reply).encode()
                self.send_response(receiver.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for name, value in receiver.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer((self.host, 0), Handler)
        if self.certfile is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(self.certfile)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def url(self, path: str = "/") -> str:
        scheme = "https" if self.certfile else "http"
        return f"{scheme}://{self.host}:{self.port}{path}"

    def stop(self) -> None:
        self._server.shutdown()


class SmtpReceiver:
    """A real SMTP server (aiosmtpd) that keeps every message it accepts."""

    def __init__(self, login: tuple[str, str] | None = None) -> None:
        """With `login`, the server requires AUTH with that user and password."""
        from aiosmtpd.controller import Controller
        from aiosmtpd.handlers import Message
        from aiosmtpd.smtp import AuthResult

        self.messages: list[Any] = []
        outer = self

        class Keep(Message):
            def handle_message(self, message: Any) -> None:
                outer.messages.append(message)

        from tests.ports import free_port

        self.port = free_port()
        auth: dict[str, Any] = {}
        if login is not None:
            expected = (login[0].encode(), login[1].encode())

            def check(server, session, envelope, mechanism, data) -> AuthResult:
                return AuthResult(success=(data.login, data.password) == expected)

            auth = {"authenticator": check, "auth_required": True, "auth_require_tls": False}
        self._controller = Controller(Keep(), hostname="127.0.0.1", port=self.port, **auth)

    def start(self) -> SmtpReceiver:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()
