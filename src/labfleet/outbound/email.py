"""Email over SMTP (aiosmtplib): STARTTLS or implicit TLS, with or without login.

``security`` is ``starttls`` (the default: the connection must be upgraded, a server
that does not offer it is refused), ``tls`` (TLS from the first byte, port 465) or
``none`` (a relay on a trusted network). ``ca_file`` trusts a lab's own CA besides the
system's. The Message-ID is derived from the notice's key, so a retry of one delivery
is recognisably the same mail.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate

import aiosmtplib

from labfleet.outbound.message import DeliveryFailed, Notice, Sent

SECURITIES = ("starttls", "tls", "none")


@dataclass(frozen=True, slots=True)
class EmailTarget:
    host: str
    port: int
    sender: str
    recipients: tuple[str, ...]
    security: str = "starttls"
    username: str | None = None
    password: str | None = None
    ca_file: str | None = None
    timeout_s: float = 15.0


def message_of(target: EmailTarget, notice: Notice) -> EmailMessage:
    message = EmailMessage()
    message["From"] = target.sender
    message["To"] = ", ".join(target.recipients)
    message["Subject"] = notice.subject
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = f"<{notice.key.replace(':', '.')}@labfleet>"
    message["X-Labfleet-Delivery"] = notice.key
    message.set_content(notice.text)
    return message


def _client(target: EmailTarget) -> aiosmtplib.SMTP:
    context = ssl.create_default_context(cafile=target.ca_file) if target.security != "none" else None
    return aiosmtplib.SMTP(
        hostname=target.host,
        port=target.port,
        use_tls=target.security == "tls",
        start_tls=target.security == "starttls",
        tls_context=context,
        timeout=target.timeout_s,
    )


def _failed(target: EmailTarget, exc: Exception) -> DeliveryFailed:
    where = f"SMTP server {target.host}:{target.port}"
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        return DeliveryFailed(f"{where} refused the login of {target.username!r}", status_code=exc.code)
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return DeliveryFailed(f"{where} answered {exc.code}: {exc.message}", status_code=exc.code)
    if isinstance(exc, aiosmtplib.SMTPTimeoutError | TimeoutError):
        return DeliveryFailed(f"no answer from {where} within {target.timeout_s:g} s")
    if isinstance(exc, ssl.SSLError):
        return DeliveryFailed(f"TLS with {where} failed: {exc.reason or exc}")
    return DeliveryFailed(f"cannot reach {where}: {exc}")


async def _session(smtp: aiosmtplib.SMTP, target: EmailTarget) -> None:
    await smtp.connect()
    if target.username:
        await smtp.login(target.username, target.password or "")


async def check(target: EmailTarget) -> None:
    """Connect, upgrade and log in as a delivery would, and leave: is the server usable?"""
    smtp = _client(target)
    try:
        await _session(smtp, target)
        await smtp.quit()
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        raise _failed(target, exc) from exc
    finally:
        smtp.close()


async def send(target: EmailTarget, notice: Notice) -> Sent:
    smtp = _client(target)
    try:
        await _session(smtp, target)
        errors, said = await smtp.send_message(message_of(target, notice))
        await smtp.quit()
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        raise _failed(target, exc) from exc
    finally:
        smtp.close()
    if errors:
        refused = ", ".join(f"{who} ({r.code})" for who, r in errors.items())
        raise DeliveryFailed(f"SMTP server {target.host} refused {refused}")
    return Sent(status_code=250, detail=said.strip()[:200])
