"""Delivering the outbox: publish each alert change once, then send it to every channel that
wants it, under a lease, until the receiver takes it or the tries run out.

Three short transactions per delivery, and no network inside one:

1. ``publish_due``: an unpublished change is taken (``published_at`` set only if still
   unset, so one process wins) and one ``pending`` delivery is added per channel that
   wants it; the caller commits, then announces it on the events bus (topic ``alerts``);
2. ``claim_due``: due deliveries (pending and due, or delivering with a lapsed lease: the
   process that held it died) are leased to this worker, each try a new attempt row;
3. ``finish``: the answer is written to the attempt; the delivery is done, due again after
   a backoff, or failed once its tries are spent, which marks the channel failing and raises
   an alert on it. A delivery that succeeds on a failing channel clears it and the alert.

A process killed between 2 and 3 leaves the delivery leased and its attempt unfinished;
after the lease it is tried again, with the same idempotency key.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.db.models import AlertEvent, DeliveryAttempt, NotificationDelivery
from labfleet.db.models.notifications import DELIVERED, DELIVERING, FAILED, PENDING
from labfleet.db.repositories import notifications as repo
from labfleet.outbound import DeliveryFailed, Notice, Sent
from labfleet.secretbox import SecretBox
from labfleet.services.core import alerts
from labfleet.services.notifications import rules
from labfleet.services.notifications.channels import route
from labfleet.services.notifications.policy import NotificationPolicy
from labfleet.services.notifications.sending import Route, Sender

log = logging.getLogger(__name__)
TOPIC = "alerts"


async def publish_due(session: AsyncSession, *, now: datetime, limit: int = 200) -> list[AlertEvent]:
    """Take the unpublished changes and fan each out to its channels; the caller commits."""
    events = await repo.unpublished(session, limit=limit)
    if not events:
        return []
    channels = await repo.channels(session, enabled_only=True)
    taken = []
    for event in events:
        if not await repo.mark_published(session, event.id, now):
            continue
        for channel in channels:
            if rules.wants(channel, event):
                session.add(
                    NotificationDelivery(event_id=event.id, channel_id=channel.id, next_attempt_at=now)
                )
        taken.append(event)
    await session.flush()
    return taken


@dataclass(frozen=True, slots=True)
class Job:
    """One claimed try: where to send, what, and which attempt it is."""

    delivery_id: int
    attempt: int
    route: Route
    notice: Notice


async def claim_due(
    session: AsyncSession,
    secrets: SecretBox,
    *,
    owner: str,
    now: datetime,
    policy: NotificationPolicy,
    limit: int,
) -> list[Job]:
    """Lease up to ``limit`` due deliveries to ``owner``; the caller commits before sending."""
    jobs = []
    for ident in await repo.due(session, now=now, limit=limit):
        if not await repo.claim(
            session, ident, owner=owner, now=now, lease=timedelta(seconds=policy.lease_seconds)
        ):
            continue
        delivery = await repo.delivery(session, ident)
        assert delivery is not None
        await session.refresh(delivery)
        event = await repo.event(session, delivery.event_id)
        channel = await repo.channel(session, ident=delivery.channel_id)
        assert event is not None
        assert channel is not None
        session.add(
            DeliveryAttempt(delivery_id=ident, number=delivery.attempts, worker=owner, started_at=now)
        )
        jobs.append(
            Job(
                delivery_id=ident,
                attempt=delivery.attempts,
                route=route(channel, secrets),
                notice=rules.notice(event, channel.id),
            )
        )
    await session.flush()
    return jobs


async def finish(
    session: AsyncSession,
    job: Job,
    outcome: Sent | DeliveryFailed,
    *,
    owner: str,
    now: datetime,
    policy: NotificationPolicy,
) -> str:
    """Write what the receiver said; the delivery's state after it. The caller commits."""
    attempt = await repo.attempt(session, job.delivery_id, job.attempt)
    if attempt is not None:
        attempt.finished_at = now
        attempt.ok = isinstance(outcome, Sent)
        attempt.status_code = outcome.status_code
        attempt.error = outcome.message if isinstance(outcome, DeliveryFailed) else None
    delivery = await repo.delivery(session, job.delivery_id, for_update=True)
    if delivery is None or delivery.state != DELIVERING or delivery.lease_owner != owner:
        # Leased to another process meanwhile (ours lapsed): its try decides, not ours.
        await session.flush()
        return delivery.state if delivery is not None else "gone"
    delivery.lease_owner = None
    delivery.lease_expires_at = None
    if isinstance(outcome, Sent):
        delivery.state = DELIVERED
        delivery.delivered_at = now
        delivery.last_error = None
        await _channel_works(session, delivery.channel_id, now)
    else:
        delivery.last_error = outcome.message
        if delivery.attempts >= policy.max_attempts:
            delivery.state = FAILED
            await _channel_fails(session, job.route, outcome.message, now)
        else:
            delivery.state = PENDING
            delay = rules.backoff(
                delivery.attempts, base=policy.backoff_base_seconds, cap=policy.backoff_max_seconds
            )
            delivery.next_attempt_at = now + timedelta(seconds=delay)
    await session.flush()
    return delivery.state


async def _channel_works(session: AsyncSession, channel_id: int, now: datetime) -> None:
    channel = await repo.channel(session, ident=channel_id, for_update=True)
    if channel is None or channel.failing_since is None:
        return
    channel.failing_since = None
    channel.last_error = None
    await alerts.resolve_alert(
        session=session, resource_kind="channel", resource_id=channel_id, kind=rules.FAILING, now=now
    )


async def _channel_fails(session: AsyncSession, to: Route, error: str, now: datetime) -> None:
    channel = await repo.channel(session, ident=to.channel_id, for_update=True)
    if channel is None:
        return
    channel.failing_since = channel.failing_since or now
    channel.last_error = error
    await alerts.raise_alert(
        session=session,
        resource_kind="channel",
        resource_id=channel.id,
        kind=rules.FAILING,
        severity="critical",
        message=f"notification channel {channel.name} ({channel.transport}) cannot deliver: {error}",
        now=now,
    )


async def attempt(sender: Sender, job: Job, *, timeout_s: float) -> Sent | DeliveryFailed:
    """One try, whatever goes wrong in it turned into the reason the delivery log shows."""
    try:
        async with asyncio.timeout(timeout_s):
            return await sender.send(job.route, job.notice)
    except DeliveryFailed as exc:
        return exc
    except TimeoutError:
        return DeliveryFailed(f"channel {job.route.name}: no answer within {timeout_s:g} s")
    except Exception as exc:  # a transport's own bug must not stop the others
        log.exception("sending to channel %s failed", job.route.name)
        return DeliveryFailed(f"channel {job.route.name}: {type(exc).__name__}")


def announcement(event: AlertEvent) -> dict[str, object]:
    """What the dashboard hears on the ``alerts`` topic."""
    return {
        "type": "alert",
        "event": event.event,
        "alert_id": event.alert_id,
        "severity": event.severity,
        "resource_kind": event.resource_kind,
        "resource_id": event.resource_id,
        "kind": event.kind,
        "message": event.message,
        "actor": event.actor,
        "at": event.created_at.isoformat(),
    }
