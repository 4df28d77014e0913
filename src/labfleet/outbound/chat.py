"""Chat services and the rest through Apprise URLs (``slack://``, ``matrixs://``, ``json://``...).

The URLs embed their tokens: they are stored sealed, and never put in an error text.
"""

from __future__ import annotations

from dataclasses import dataclass

import apprise

from labfleet.outbound.message import DeliveryFailed, Notice, Sent


@dataclass(frozen=True, slots=True)
class AppriseTarget:
    urls: tuple[str, ...]
    timeout_s: float = 15.0


def unknown_urls(urls: tuple[str, ...]) -> list[int]:
    """The positions of the URLs Apprise has no service for (checked when a channel is saved)."""
    return [i for i, url in enumerate(urls) if apprise.Apprise.instantiate(url) is None]


async def send(target: AppriseTarget, notice: Notice) -> Sent:
    sender = apprise.Apprise()
    for url in target.urls:
        sender.add(url)
    result = await sender.async_notify(
        body=notice.text,
        title=notice.subject,
        notify_type=apprise.NotifyType(notice.level),
        timeout=target.timeout_s,
    )
    if not result:
        raise DeliveryFailed(
            f"Apprise: {result.failed_count} of {len(target.urls)} services did not take the notice "
            f"({result.status.name.lower()})"
        )
    return Sent(detail=f"{result.success_count} services notified")
