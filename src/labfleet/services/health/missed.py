"""What checks a machine did not answer mean: one rule for build servers and QEMU hosts.

Each unanswered check adds one to the machine's ``check_failures`` (its repository does
that, in the check's first statement). Below ``failure_limit`` in a row nothing else
happens; at the limit an ``online`` or ``degraded`` machine goes ``offline`` and an
``unreachable`` alert (critical) is raised, unless an operator put it in maintenance,
where reboots are expected and its status is the operator's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.schemas.enums import ServerStatus
from labfleet.services.core import alerts

UNREACHABLE = "unreachable"
OFFLINE = ServerStatus.offline.value
_MAINTENANCE = ServerStatus.maintenance.value

C = TypeVar("C", bound="Checked")


@dataclass(frozen=True, slots=True)
class Missed:
    """An unanswered check: the failures in a row it makes, the status it found, the limit."""

    failures: int
    before: str
    limit: int

    @property
    def past_limit(self) -> bool:
        """Enough in a row that the machine no longer does what it did."""
        return self.failures >= self.limit

    @property
    def unreachable(self) -> bool:
        """Past the limit and not in maintenance: offline, with an ``unreachable`` alert."""
        return self.past_limit and self.before != _MAINTENANCE

    def says(self, noun: str, hostname: str, error: str) -> str:
        return f"{noun} {hostname} did not answer {self.failures} health checks in a row: {error}"

    def result(self, kind: type[C], *, hostname: str, error: str, **ids: Any) -> C:
        """The check's result as far as the miss goes: nothing changed yet."""
        return kind(
            hostname=hostname,
            answered=False,
            status=self.before,
            previous_status=self.before,
            failures=self.failures,
            error=error,
            **ids,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Checked:
    """What one check of a machine changed; each kind's result adds its id and what it learned."""

    hostname: str
    answered: bool
    status: str
    previous_status: str
    failures: int
    error: str | None = None
    raised: tuple[str, ...] = ()
    resolved: tuple[str, ...] = ()

    @property
    def changed_status(self) -> bool:
        return self.status != self.previous_status


async def raise_unreachable(
    session: AsyncSession, resource_kind: str, resource_id: int, message: str, now: datetime
) -> None:
    await alerts.raise_alert(
        session=session,
        resource_kind=resource_kind,
        resource_id=resource_id,
        kind=UNREACHABLE,
        severity="critical",
        message=message,
        now=now,
    )
