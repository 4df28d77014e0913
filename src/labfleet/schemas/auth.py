"""Who is acting: the identity every service call carries for authorization and audit."""

from __future__ import annotations

from dataclasses import dataclass

from labfleet.schemas.enums import Role


@dataclass(frozen=True, slots=True)
class Actor:
    name: str
    role: Role
    team: str | None = None
    token_id: int | None = None

    def can(self, role: Role) -> bool:
        return self.role >= role


SYSTEM = Actor(name="labfleet", role=Role.admin)
