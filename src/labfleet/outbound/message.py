"""What every transport is given and gives back."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Notice:
    """One notification, as every transport renders it.

    ``key`` is the idempotency key: the same for every retry of one delivery, different for
    every other; receivers use it to drop a repeat.
    """

    key: str
    subject: str
    text: str
    level: str = "info"
    """info, success, warning or failure: how a chat service colours it."""
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Sent:
    """What the receiver answered to a notice it took."""

    status_code: int | None = None
    detail: str = ""


class DeliveryFailed(Exception):
    """The receiver did not take the notice; ``message`` says why, and holds no secret."""

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
