"""Environments as the API takes and shows them (R5, R6, R11).

A pipeline asks for its target, requirements and boot in the same terms as an environment.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints, field_validator, model_validator

from labfleet.schemas.boards import Peripherals
from labfleet.schemas.builds import Branch, Commit, RepositoryUrl
from labfleet.schemas.common import ArchitectureName, Labels, Slug, StatusOut, Strict
from labfleet.schemas.reservations import MAX_HOLD_S

EnvironmentKind = Literal["qemu", "board"]

TargetName = Annotated[str, StringConstraints(min_length=1, max_length=255, strip_whitespace=True)]


class Requirements(Strict):
    """What the target must offer: a VM's shape on a host, or a board's traits."""

    vcpus: int = Field(default=1, ge=1, le=64, description="A VM's vCPUs (qemu).")
    memory_mb: int = Field(default=256, ge=64, le=256 * 1024, description="A VM's memory (qemu).")
    kvm: bool = Field(default=False, description="Only hosts with KVM for the architecture (qemu).")
    machine: Slug | None = Field(
        default=None, description="The QEMU machine type; by default the architecture's usual one."
    )
    board_type: Slug | None = Field(default=None, description="Only boards of this type (board).")
    peripherals: Peripherals = Field(default_factory=list, description="Peripherals the board must have.")
    labels: Labels = Field(default_factory=dict, description="Labels the host or board must carry.")


class BootSpec(Strict):
    pattern: Annotated[str, StringConstraints(min_length=1, max_length=500)] | None = Field(
        default=None, description="A regular expression the console shows once booted; by default a prompt."
    )
    timeout_s: int = Field(default=300, ge=5, le=3600)
    cmdline: Annotated[str, StringConstraints(max_length=2000)] = Field(
        default="", description="Kernel command line of a VM (a console= for its serial port is added)."
    )

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a regular expression: {exc}") from exc
        return value


class ArtifactChoice(Strict):
    """Which build's artifacts: by build id, by commit, or the latest successful build of a branch."""

    build_id: int | None = Field(default=None, ge=1)
    commit: Commit | None = None
    latest: bool = False
    repository_url: RepositoryUrl | None = Field(default=None, description="With commit or latest.")
    branch: Branch | None = Field(default=None, description="With latest.")

    @model_validator(mode="after")
    def _one_way(self) -> ArtifactChoice:
        ways = sum((self.build_id is not None, self.commit is not None, self.latest))
        if ways != 1:
            raise ValueError("give one of build_id, commit, or latest (with repository_url and branch)")
        if self.latest and (self.repository_url is None or self.branch is None):
            raise ValueError("latest needs repository_url and branch")
        return self


class EnvironmentCreate(Strict):
    kind: EnvironmentKind
    architecture: ArchitectureName
    artifacts: ArtifactChoice
    target: TargetName = Field(
        default="auto", description="A host's hostname or a board's name, or `auto` to let labfleet choose."
    )
    requirements: Requirements = Field(default_factory=Requirements)
    boot: BootSpec = Field(default_factory=BootSpec)
    purpose: Annotated[str, StringConstraints(max_length=500, strip_whitespace=True)] = "environment"
    expires_in_s: int = Field(default=3600, ge=60, le=MAX_HOLD_S)


# -- out


class EnvironmentOut(BaseModel):
    id: int
    url: str
    display: str
    kind: str
    status: StatusOut
    owner: str
    team: str | None
    purpose: str
    architecture: str
    target: str
    host_id: int | None
    host: str | None
    board_id: int | None
    board: str | None
    reservation_id: int | None
    pipeline_id: int | None
    build_job_id: int | None
    artifacts: dict[str, Any]
    vcpus: int
    memory_mb: int
    domain_name: str | None
    console_url: str | None
    warnings: list[str]
    failed_resources: list[str]
    error: str | None
    steps: list[dict[str, Any]]
    created_at: datetime
    ready_at: datetime | None
    expires_at: datetime
    released_at: datetime | None
    release_reason: str | None
    decision: dict[str, Any] | None = Field(
        default=None, description="How an `auto` target was chosen (with ?explain=true)."
    )
