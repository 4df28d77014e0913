"""Which channel wants which change, when to try again, and what a notice says. Pure."""

from __future__ import annotations

import random
from collections.abc import Callable

from labfleet.db.models import AlertEvent, NotificationChannel
from labfleet.outbound import Notice
from labfleet.services.core.alert_events import rank

FAILING = "notification_failing"
"""The kind of the alert raised on a channel that cannot deliver."""


def wants(channel: NotificationChannel, event: AlertEvent) -> bool:
    if not channel.enabled:
        return False
    # A channel is not told that it cannot deliver: it would fail again, and its own alert
    # would keep it failing. The other channels are told.
    if event.resource_kind == "channel" and event.resource_id == channel.id:
        return False
    if channel.resource_kinds and event.resource_kind not in channel.resource_kinds:
        return False
    if channel.events and event.event not in channel.events:
        return False
    return rank(event.severity) >= rank(channel.min_severity)


def backoff(attempt: int, *, base: float, cap: float, jitter: Callable[[], float] = random.random) -> float:
    """Seconds before try ``attempt + 1``: doubling from ``base``, at most ``cap``, with up to a
    quarter more at random so that receivers coming back are not hit by every sender at once."""
    delay = min(cap, base * 2.0 ** max(0, attempt - 1))
    return float(delay * (1 + 0.25 * jitter()))


def key(event_id: int, channel_id: int) -> str:
    """The idempotency key of one event's delivery to one channel: the same on every retry."""
    return f"{event_id}:{channel_id}"


_LEVEL = {"critical": "failure", "warning": "warning", "info": "info"}


def notice(event: AlertEvent, channel_id: int) -> Notice:
    subject_of = f"{event.resource_kind.replace('_', ' ')} {event.resource_id}"
    subject = f"[labfleet] {event.severity.upper()} {event.event}: {event.kind} on {subject_of}"
    lines = [event.message, "", f"alert #{event.alert_id}, {event.event} at {event.created_at.isoformat()}"]
    if event.actor and event.event in ("acknowledged", "resolved"):
        lines.append(f"by {event.actor}" + (f": {event.comment}" if event.comment else ""))
    payload = {
        "event": event.event,
        "event_id": event.id,
        "delivery": key(event.id, channel_id),
        "at": event.created_at.isoformat(),
        "actor": event.actor,
        "comment": event.comment,
        "alert": {
            "id": event.alert_id,
            "kind": event.kind,
            "severity": event.severity,
            "resource_kind": event.resource_kind,
            "resource_id": event.resource_id,
            "message": event.message,
        },
    }
    level = "success" if event.event == "resolved" else _LEVEL.get(event.severity, "info")
    return Notice(
        key=key(event.id, channel_id), subject=subject, text="\n".join(lines), level=level, payload=payload
    )
