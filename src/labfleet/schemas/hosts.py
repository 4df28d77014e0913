"""QEMU hosts as the API accepts and returns them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, StringConstraints

from labfleet.schemas.common import StatusOut
from labfleet.schemas.ssh import MachineCreate, MachineOut, MachineUpdate

LIBVIRT_SCHEMES = ("qemu", "qemu+ssh", "qemu+tcp", "qemu+tls", "qemu+unix", "test")


def _libvirt_uri(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in LIBVIRT_SCHEMES:
        raise ValueError(f"scheme must be one of {', '.join(LIBVIRT_SCHEMES)}")
    if parts.scheme.startswith("qemu") and parts.path not in ("/system", "/session"):
        raise ValueError("a QEMU URI ends in /system or /session, e.g. qemu+ssh://user@host/system")
    return value


LibvirtUri = Annotated[str, StringConstraints(min_length=1, max_length=1024), AfterValidator(_libvirt_uri)]


class HostCreate(MachineCreate):
    libvirt_uri: LibvirtUri
    utilization_threshold_pct: int = Field(default=85, ge=1, le=100)


class HostUpdate(MachineUpdate):
    libvirt_uri: LibvirtUri | None = None
    utilization_threshold_pct: int | None = Field(default=None, ge=1, le=100)


class HostOut(MachineOut):
    libvirt_uri: str
    description: str
    status: StatusOut
    utilization_threshold_pct: int
    cpu_cores: int | None
    memory_mb: int | None
    storage_gb: float | None
    kvm: bool
    native_architecture: str | None = Field(
        default=None, description="The host CPU's own architecture, as libvirt reported it at registration."
    )
    architectures: list[str]
    machine_types: dict[str, list[str]]
    labels: dict[str, str]
    checked_at: datetime | None
    created_at: datetime
    updated_at: datetime
