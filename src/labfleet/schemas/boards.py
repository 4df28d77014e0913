"""Boards as the API accepts and returns them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Self

from pydantic import AfterValidator, BaseModel, Field, model_validator

from labfleet.schemas.common import (
    Address,
    ArchitectureName,
    Description,
    Labels,
    Name,
    Port,
    Secret,
    Slug,
    StatusOut,
    Strict,
)
from labfleet.schemas.ssh import PrivateKey, UserName
from labfleet.schemas.wiring import ConsoleUrl, FlashConfig, PowerConfig


def _unique(value: list[str]) -> list[str]:
    if len(set(value)) != len(value):
        raise ValueError("each peripheral may be listed once")
    return sorted(value)


Peripherals = Annotated[list[Slug], Field(max_length=64), AfterValidator(_unique)]
SerialNumber = Annotated[Name, Field(max_length=128)]


class BoardSshIn(Strict):
    address: Address
    port: Port = 22
    username: UserName = "root"
    private_key: PrivateKey | None = Field(default=None, description="Write-only.")
    password: Secret | None = Field(default=None, description="Write-only.")


class BoardCreate(Strict):
    name: Slug
    board_type: Slug
    architecture: ArchitectureName
    serial_number: SerialNumber
    console_url: ConsoleUrl | None = None
    ssh: BoardSshIn | None = None
    power: PowerConfig | None = None
    flash: FlashConfig | None = None
    peripherals: Peripherals = Field(default_factory=list)
    firmware_version: Annotated[str, Field(max_length=128)] | None = None
    description: Description = ""
    labels: Labels = Field(default_factory=dict)

    @model_validator(mode="after")
    def _reachable_somehow(self) -> Self:
        if self.console_url is None and self.ssh is None:
            raise ValueError("a board needs a console_url, an ssh address, or both")
        return self


class BoardUpdate(Strict):
    name: Slug | None = None
    board_type: Slug | None = None
    architecture: ArchitectureName | None = None
    serial_number: SerialNumber | None = None
    console_url: ConsoleUrl | None = None
    ssh: BoardSshIn | None = None
    power: PowerConfig | None = None
    flash: FlashConfig | None = None
    peripherals: Peripherals | None = None
    firmware_version: Annotated[str, Field(max_length=128)] | None = None
    description: Description | None = None
    labels: Labels | None = Field(default=None, description="Replaces all labels when given.")


class BoardSshOut(BaseModel):
    address: str
    port: int
    username: str | None
    credentials_set: bool
    host_key: str | None


class WiringOut(BaseModel):
    driver: str
    params: dict[str, Any]
    secret_set: bool


class BoardHealthOut(BaseModel):
    reachable: bool | None
    temperature_c: float | None
    power_state: str | None
    consecutive_failures: int
    checked_at: datetime | None


class BoardOut(BaseModel):
    id: int
    url: str
    display: str
    name: str
    board_type: str
    architecture: str
    serial_number: str
    status: StatusOut
    console_url: str | None
    ssh: BoardSshOut | None
    power: WiringOut | None
    flash: WiringOut | None
    peripherals: list[str]
    firmware_version: str | None
    health: BoardHealthOut | None
    description: str
    labels: dict[str, str]
    created_at: datetime
    updated_at: datetime
