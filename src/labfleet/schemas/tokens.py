"""API tokens as the API accepts and returns them."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from labfleet.schemas.common import Name, Strict


class TokenCreate(Strict):
    name: Name
    role: Literal["viewer", "operator", "admin"]
    team: Name | None = None
    expires_at: datetime | None = None


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
