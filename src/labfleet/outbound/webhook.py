"""Webhooks: a JSON body, signed with HMAC-SHA256 over the exact bytes sent.

Headers a receiver can rely on:

- ``X-Labfleet-Signature: sha256=<hex>``: HMAC-SHA256 of the raw body with the channel's
  secret; compare it in constant time before trusting the body;
- ``Idempotency-Key`` (and ``X-Labfleet-Delivery``): the same on every retry of one
  delivery; a receiver that has seen it already answers 2xx and does nothing;
- ``X-Labfleet-Event``: raised, escalated, acknowledged or resolved.

Any 2xx is taken; anything else, a timeout or a refused connection is a failure to retry.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass

import httpx

from labfleet import __version__
from labfleet.outbound.message import DeliveryFailed, Notice, Sent

SIGNATURE_HEADER = "X-Labfleet-Signature"


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    url: str
    secret: str
    timeout_s: float = 10.0


def body_of(notice: Notice) -> bytes:
    return json.dumps(notice.payload, sort_keys=True, separators=(",", ":")).encode()


def sign(secret: str, body: bytes) -> str:
    """The signature header's value for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str) -> bool:
    """What a receiver does: does ``header`` sign ``body`` with ``secret``?"""
    return hmac.compare_digest(sign(secret, body), header)


class Poster:
    """Posts webhooks over one HTTP client, its connections reused; ``async with Poster() as p``."""

    def __init__(self) -> None:
        self._client = httpx.AsyncClient(follow_redirects=False)

    async def __aenter__(self) -> Poster:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._client.aclose()

    async def post(self, target: WebhookTarget, notice: Notice) -> Sent:
        return await post(self._client, target, notice)


async def post(client: httpx.AsyncClient, target: WebhookTarget, notice: Notice) -> Sent:
    body = body_of(notice)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": f"labfleet/{__version__}",
        SIGNATURE_HEADER: sign(target.secret, body),
        "Idempotency-Key": notice.key,
        "X-Labfleet-Delivery": notice.key,
        "X-Labfleet-Event": str(notice.payload.get("event", "")),
    }
    try:
        response = await client.post(target.url, content=body, headers=headers, timeout=target.timeout_s)
    except httpx.TimeoutException as exc:
        raise DeliveryFailed(f"no answer from {_where(target.url)} within {target.timeout_s:g} s") from exc
    except httpx.HTTPError as exc:
        raise DeliveryFailed(f"cannot reach {_where(target.url)}: {type(exc).__name__}: {exc}") from exc
    if not response.is_success:
        said = response.text[:200].strip()
        raise DeliveryFailed(
            f"{_where(target.url)} answered {response.status_code}" + (f": {said}" if said else ""),
            status_code=response.status_code,
        )
    return Sent(status_code=response.status_code)


def _where(url: str) -> str:
    """The URL without its query or user info, which may hold tokens."""
    parsed = httpx.URL(url)
    return f"{parsed.scheme}://{parsed.host}{f':{parsed.port}' if parsed.port else ''}{parsed.path}"
