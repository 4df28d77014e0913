"""Telling people about alerts: an outbox of alert changes, the channels, and every delivery.

An ``alert_events`` row is written in the same transaction as the alert change it tells of
(raised, escalated, acknowledged, resolved), so that no change is lost between the two.
A worker later publishes it (``published_at``: on the events bus, and one
``notification_deliveries`` row per channel that wants it) and delivers each one under a
lease; every try is a ``delivery_attempts`` row. A delivery is made once per event and
channel (a unique pair) and carries ``<event>:<channel>`` as its idempotency key, so a
receiver can tell a retry from a new notification.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from labfleet.db.base import Base, Timestamps, one_of, utcnow

EVENTS = ("raised", "escalated", "acknowledged", "resolved")
TRANSPORTS = ("email", "webhook", "apprise")

PENDING = "pending"
DELIVERING = "delivering"
DELIVERED = "delivered"
FAILED = "failed"
DELIVERY_STATES = (PENDING, DELIVERING, DELIVERED, FAILED)


class AlertEvent(Base):
    __tablename__ = "alert_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), index=True)
    event: Mapped[str] = mapped_column(String(16))
    # What the alert was when it changed: a notification tells of that moment, not of now.
    severity: Mapped[str] = mapped_column(String(16))
    resource_kind: Mapped[str] = mapped_column(String(16))
    resource_id: Mapped[int]
    kind: Mapped[str] = mapped_column(String(64))
    message: Mapped[str]
    actor: Mapped[str | None] = mapped_column(String(128), default=None)
    comment: Mapped[str | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(default=None, index=True)

    __table_args__ = (CheckConstraint(one_of("event", EVENTS), name="event"),)


class NotificationChannel(Timestamps, Base):
    __tablename__ = "notification_channels"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    transport: Mapped[str] = mapped_column(String(16))
    min_severity: Mapped[str] = mapped_column(String(16), default="warning")
    # Empty: every resource kind, every event.
    resource_kinds: Mapped[list[str]] = mapped_column(default=list)
    events: Mapped[list[str]] = mapped_column(default=list)
    # Where and how to send, without secrets; those (SMTP password, webhook signing key,
    # Apprise URLs, which embed tokens) are sealed apart.
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    sealed_secret: Mapped[str | None] = mapped_column(default=None)
    enabled: Mapped[bool] = mapped_column(default=True)
    failing_since: Mapped[datetime | None] = mapped_column(default=None)
    last_error: Mapped[str | None] = mapped_column(default=None)

    __table_args__ = (CheckConstraint(one_of("transport", TRANSPORTS), name="transport"),)


class NotificationDelivery(Base):
    __tablename__ = "notification_deliveries"

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("alert_events.id", ondelete="CASCADE"))
    channel_id: Mapped[int] = mapped_column(ForeignKey("notification_channels.id", ondelete="CASCADE"))
    state: Mapped[str] = mapped_column(String(16), default=PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    lease_owner: Mapped[str | None] = mapped_column(String(128), default=None)
    lease_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(default=None)
    last_error: Mapped[str | None] = mapped_column(default=None)

    __table_args__ = (
        UniqueConstraint("event_id", "channel_id"),
        CheckConstraint(one_of("state", DELIVERY_STATES), name="state"),
        Index("ix_notification_deliveries_due", "state", "next_attempt_at"),
        Index("ix_notification_deliveries_channel_id", "channel_id"),
    )


class DeliveryAttempt(Base):
    __tablename__ = "delivery_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    delivery_id: Mapped[int] = mapped_column(
        ForeignKey("notification_deliveries.id", ondelete="CASCADE"), index=True
    )
    number: Mapped[int]
    worker: Mapped[str] = mapped_column(String(128))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Unset while it runs, and for good when its process died: the log shows that too.
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    ok: Mapped[bool | None] = mapped_column(default=None)
    status_code: Mapped[int | None] = mapped_column(default=None)
    error: Mapped[str | None] = mapped_column(default=None)
