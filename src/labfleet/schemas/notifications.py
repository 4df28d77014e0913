"""Notification channels and their deliveries, as the API accepts and shows them.

A channel's secrets (SMTP password, webhook signing key, Apprise URLs) are write-only:
they are accepted here, sealed by the service, and never shown again; the output says
only whether one is set.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field, HttpUrl, StringConstraints

from labfleet.schemas.alerts import AlertChange, AlertSubject, Severity
from labfleet.schemas.common import Address, Port, Secret, Slug, Strict

_MAILBOX = re.compile(r"^[^@\s<>,;\"]+@[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$")


def _mailbox(value: str) -> str:
    if not _MAILBOX.match(value):
        raise ValueError("not an email address (local@domain)")
    return value


def _web(value: HttpUrl) -> HttpUrl:
    if value.username or value.password:
        raise ValueError("must not carry a user name or password: the signature authenticates")
    return value


Mailbox = Annotated[str, StringConstraints(max_length=254), AfterValidator(_mailbox)]
WebhookUrl = Annotated[HttpUrl, AfterValidator(_web)]


class EmailTarget(Strict):
    transport: Literal["email"]
    host: Address
    port: Port = 587
    security: Literal["starttls", "tls", "none"] = Field(
        default="starttls",
        description="starttls: upgrade the connection, refuse a server that cannot; tls: TLS from "
        "the start (port 465); none: a relay on a trusted network.",
    )
    sender: Mailbox
    recipients: list[Mailbox] = Field(min_length=1, max_length=50)
    username: str | None = Field(default=None, max_length=255)
    password: Secret | None = Field(default=None, description="Write-only.")
    ca_file: str | None = Field(
        default=None, max_length=4096, description="A CA bundle to trust besides the system's."
    )


class WebhookTarget(Strict):
    transport: Literal["webhook"]
    url: WebhookUrl
    secret: Annotated[str, StringConstraints(min_length=16, max_length=1024)] = Field(
        description="Write-only. The key of the X-Labfleet-Signature HMAC-SHA256 over the raw body."
    )


class AppriseTarget(Strict):
    transport: Literal["apprise"]
    urls: list[Secret] = Field(
        min_length=1, max_length=20, description="Write-only: Apprise URLs embed their tokens."
    )


Target = Annotated[EmailTarget | WebhookTarget | AppriseTarget, Field(discriminator="transport")]


class ChannelIn(Strict):
    name: Slug
    target: Target
    min_severity: Severity = Severity.warning
    resource_kinds: list[AlertSubject] = Field(default_factory=list, description="Empty: every kind.")
    events: list[AlertChange] = Field(default_factory=list, description="Empty: every change.")
    enabled: bool = True


class ChannelUpdate(Strict):
    """What is given changes; a new ``target`` replaces the old one, secrets included."""

    target: Target | None = None
    min_severity: Severity | None = None
    resource_kinds: list[AlertSubject] | None = None
    events: list[AlertChange] | None = None
    enabled: bool | None = None


class ChannelOut(BaseModel):
    id: int
    name: str
    transport: str
    target: dict[str, object] = Field(description="Where it sends; secrets only as has_* flags.")
    min_severity: Severity
    resource_kinds: list[AlertSubject]
    events: list[AlertChange]
    enabled: bool
    failing: bool
    failing_since: datetime | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime


class DeliveryState(StrEnum):
    pending = "pending"
    delivering = "delivering"
    delivered = "delivered"
    failed = "failed"


class AttemptOut(BaseModel):
    number: int
    worker: str
    started_at: datetime
    finished_at: datetime | None
    ok: bool | None = Field(description="Unset: it never finished (its process died).")
    status_code: int | None
    error: str | None


class DeliveryOut(BaseModel):
    id: int
    event_id: int
    alert_id: int
    event: AlertChange
    channel_id: int
    channel: str
    state: DeliveryState
    attempts: int
    next_attempt_at: datetime
    created_at: datetime
    delivered_at: datetime | None
    last_error: str | None
    idempotency_key: str


class DeliveryDetail(DeliveryOut):
    log: list[AttemptOut]
