"""API tokens as the API accepts and returns them."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from labfleet.schemas.common import Name, Strict
from labfleet.schemas.enums import Role


class TokenCreate(Strict):
    name: Name
    role: str = Field(pattern="^(viewer|operator|admin)$")
    team: Name | None = None
    expires_at: datetime | None = None

    @property
    def role_value(self) -> Role:
        return Role[self.role]


class TokenOut(BaseModel):
    id: int
    name: str
    role: str
    team: str | None
    prefix: str
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


class TokenCreated(TokenOut):
    token: str = Field(description="The secret; shown only in this response.")
