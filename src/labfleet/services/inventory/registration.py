"""What registration learns about a resource before it joins the pool.

Registration asks a ``RegistrationValidator`` for the facts of a new resource. The
validator that reaches devices (SSH, libvirt, console) raises a ``DeviceError`` when it
cannot, and the resource is not stored. ``InputOnly`` checks nothing beyond the input
models: it is what a deployment without device access, or a unit test, runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from labfleet.schemas.boards import BoardCreate
from labfleet.schemas.build_servers import BuildServerCreate
from labfleet.schemas.hosts import HostCreate


@dataclass(frozen=True, slots=True)
class ToolchainFact:
    compiler: str
    target_triplet: str
    architecture: str
    version: str
    path: str


@dataclass(frozen=True, slots=True)
class BuildServerFacts:
    host_key: str | None = None
    cpu_cores: int | None = None
    memory_mb: int | None = None
    disk_total_gb: float | None = None
    disk_free_gb: float | None = None
    load_1m: float | None = None
    toolchains: tuple[ToolchainFact, ...] = ()


@dataclass(frozen=True, slots=True)
class HostFacts:
    host_key: str | None = None
    cpu_cores: int | None = None
    memory_mb: int | None = None
    storage_gb: float | None = None
    kvm: bool = False
    machine_types: dict[str, list[str]] = field(default_factory=dict)
    native_architecture: str | None = None


@dataclass(frozen=True, slots=True)
class BoardFacts:
    host_key: str | None = None
    firmware_version: str | None = None


class RegistrationValidator(Protocol):
    async def build_server(self, data: BuildServerCreate) -> BuildServerFacts: ...

    async def host(self, data: HostCreate) -> HostFacts: ...

    async def board(self, data: BoardCreate) -> BoardFacts: ...


class InputOnly:
    """Accepts every well-formed registration and learns nothing from the device."""

    async def build_server(self, data: BuildServerCreate) -> BuildServerFacts:
        return BuildServerFacts()

    async def host(self, data: HostCreate) -> HostFacts:
        return HostFacts()

    async def board(self, data: BoardCreate) -> BoardFacts:
        return BoardFacts()
