"""How hard delivery tries, and how the worker paces itself."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class NotificationPolicy:
    lease_seconds: float = 60.0
    """A delivery in flight is the worker's for this long; after that another process retries it."""
    max_attempts: int = 8
    """Tries of one delivery before it is failed and its channel marked failing."""
    backoff_base_seconds: float = 5.0
    backoff_max_seconds: float = 600.0
    timeout_seconds: float = 15.0
    """How long one try may take (connect, send, answer)."""
    poll_seconds: float = 1.0
    concurrency: int = 8
    """Deliveries in flight at once in one process."""
