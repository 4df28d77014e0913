"""SSH access to a machine. Credentials are write-only: accepted, sealed, never returned."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field, StringConstraints

from labfleet.schemas.common import Address, Description, Labels, Port, Secret, Strict

_USER = re.compile(r"^[a-z_][a-z0-9_.-]*\$?$", re.IGNORECASE)


def _user(value: str) -> str:
    if not _USER.match(value):
        raise ValueError("not a valid user name")
    return value


def _private_key(value: str) -> str:
    text = value.strip()
    if not (text.startswith("-----BEGIN ") and "PRIVATE KEY-----" in text.splitlines()[0]):
        raise ValueError("expected a PEM or OpenSSH private key ('-----BEGIN ... PRIVATE KEY-----')")
    return text + "\n"


UserName = Annotated[str, StringConstraints(min_length=1, max_length=32), AfterValidator(_user)]
PrivateKey = Annotated[Secret, AfterValidator(_private_key)]


class SshIn(Strict):
    port: Port = 22
    username: UserName
    private_key: PrivateKey | None = Field(default=None, description="Write-only.")
    password: Secret | None = Field(default=None, description="Write-only.")


class SshUpdate(Strict):
    port: Port | None = None
    username: UserName | None = None
    private_key: PrivateKey | None = Field(default=None, description="Write-only; replaces the stored one.")
    password: Secret | None = Field(default=None, description="Write-only; replaces the stored one.")


class SshOut(BaseModel):
    port: int
    username: str
    credentials_set: bool = Field(description="Whether a private key or password is stored.")
    host_key: str | None = Field(description="The pinned host key, once known.")


class MachineCreate(Strict):
    """What every machine reached over SSH is registered with."""

    hostname: Address
    address: Address
    ssh: SshIn
    description: Description = ""
    labels: Labels = Field(default_factory=dict)


class MachineUpdate(Strict):
    hostname: Address | None = None
    address: Address | None = None
    ssh: SshUpdate | None = None
    description: Description | None = None
    labels: Labels | None = Field(default=None, description="Replaces all labels when given.")


class MachineOut(BaseModel):
    """What every machine reached over SSH is shown with first."""

    id: int
    url: str
    display: str
    hostname: str
    address: str
    ssh: SshOut
