"""The seam to ``outbound/``: a channel's stored settings made into a transport's target."""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol

from labfleet.outbound import DeliveryFailed, Notice, Sent, chat, email, webhook


@dataclass(frozen=True, slots=True)
class Route:
    """Everything needed to send to one channel, read in a short transaction and used outside it."""

    channel_id: int
    name: str
    transport: str
    config: dict[str, Any]
    secret: dict[str, Any]


class Sender(Protocol):
    async def send(self, route: Route, notice: Notice) -> Sent: ...


def email_target(config: dict[str, Any], secret: dict[str, Any], timeout_s: float) -> email.EmailTarget:
    return email.EmailTarget(
        host=config["host"],
        port=int(config["port"]),
        sender=config["sender"],
        recipients=tuple(config["recipients"]),
        security=config.get("security", "starttls"),
        username=config.get("username"),
        password=secret.get("password"),
        ca_file=config.get("ca_file"),
        timeout_s=timeout_s,
    )


class LiveSender:
    """Sends for real: SMTP, webhooks (one ``Poster``, its connections reused), Apprise."""

    def __init__(self, *, timeout_s: float) -> None:
        self._timeout_s = timeout_s
        self._poster = webhook.Poster()

    async def __aenter__(self) -> LiveSender:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._poster.__aexit__(exc_type, exc, tb)

    async def send(self, route: Route, notice: Notice) -> Sent:
        if route.transport == "email":
            return await email.send(email_target(route.config, route.secret, self._timeout_s), notice)
        if route.transport == "webhook":
            target = webhook.WebhookTarget(
                url=route.config["url"], secret=route.secret["secret"], timeout_s=self._timeout_s
            )
            return await self._poster.post(target, notice)
        if route.transport == "apprise":
            return await chat.send(chat.AppriseTarget(tuple(route.secret["urls"]), self._timeout_s), notice)
        raise DeliveryFailed(f"channel {route.name}: unknown transport {route.transport!r}")
