"""Real receivers for notifications, started by the tests: an SMTP server (aiosmtpd) that
speaks STARTTLS and AUTH, and an HTTP server that checks each webhook's signature."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from labfleet.outbound.webhook import SIGNATURE_HEADER, verify
from tests.helpers import free_port


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key: the CA bundle a channel trusts is the cert."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "smtp.crt", directory / "smtp.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_file, key_file


@dataclass
class Mailbox:
    """What the SMTP server took, and whom it let in."""

    messages: list[Message] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
        with self.arrived:
            self.messages.append(message_from_bytes(envelope.original_content))
            self.arrived.notify_all()
        return "250 OK"

    async def wait(self, count: int, timeout: float = 20.0) -> list[Message]:
        """Once ``count`` messages are in (off the event loop: the senders may be on it)."""
        return await asyncio.to_thread(self._wait, count, timeout)

    def _wait(self, count: int, timeout: float) -> list[Message]:
        with self.arrived:
            assert self.arrived.wait_for(lambda: len(self.messages) >= count, timeout), self.messages
            return list(self.messages)


@dataclass(frozen=True)
class Smtp:
    host: str
    port: int
    ca_file: str
    mailbox: Mailbox
    user: str = "labfleet"
    password: str = "mail-pass-0123"


@contextmanager
def smtp_server(directory: Path) -> Iterator[Smtp]:
    """An SMTP server on loopback that requires STARTTLS, and a login, before it takes mail."""
    cert, key = self_signed(directory)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    mailbox = Mailbox()
    smtp = Smtp("127.0.0.1", free_port(), str(cert), mailbox)

    def authenticate(
        server: object, session: object, envelope: object, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login.decode(), data.password.decode()) == (
            smtp.user,
            smtp.password,
        )
        if ok:
            mailbox.logins.append(smtp.user)
        return AuthResult(success=ok, handled=False)

    controller = Controller(
        mailbox,
        hostname=smtp.host,
        port=smtp.port,
        tls_context=context,
        require_starttls=True,
        authenticator=authenticate,
        auth_required=True,
        auth_require_tls=True,
    )
    controller.start()
    try:
        yield smtp
    finally:
        controller.stop()


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    signed: bool


class Hook:
    """An HTTP receiver of webhooks: answers each request with the next of ``answers`` (then
    200), or holds it while ``hold`` is set; records every request, checking its signature."""

    def __init__(self, secret: str | None, answers: list[int] | None = None) -> None:
        """``secret`` None: a receiver that does not check signatures (Apprise's ``json://``)."""
        self.secret = secret
        self.answers = list(answers or [])
        self.received: list[Received] = []
        self.hold = threading.Event()
        self.release = threading.Event()
        self._lock = threading.Condition()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                given = self.headers.get(SIGNATURE_HEADER, "")
                signed = hook.secret is None or verify(hook.secret, body, given)
                with hook._lock:
                    hook.received.append(Received(self.path, dict(self.headers.items()), body, signed))
                    hook._lock.notify_all()
                    status = hook.answers.pop(0) if hook.answers else 200
                if hook.hold.is_set():
                    hook.release.wait(60)
                self.send_response(status if signed else 401)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/labfleet"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Hook:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    async def wait(self, count: int, timeout: float = 20.0) -> list[Received]:
        """Once ``count`` requests came (off the event loop: the senders may be on it)."""
        return await asyncio.to_thread(self._wait, count, timeout)

    def _wait(self, count: int, timeout: float) -> list[Received]:
        deadline = time.monotonic() + timeout
        with self._lock:
            assert self._lock.wait_for(lambda: len(self.received) >= count, deadline - time.monotonic()), (
                self.received
            )
            return list(self.received)
