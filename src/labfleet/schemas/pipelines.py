"""Environments and pipelines as the API takes and shows them (R5, R6, R11, R17)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints, field_validator, model_validator

from labfleet.schemas.boards import Peripherals
from labfleet.schemas.builds import ArtifactSpec, Branch, BuildCommand, Commit, MakeWord, RepositoryUrl
from labfleet.schemas.common import ArchitectureName, Labels, Slug, Strict
from labfleet.schemas.reservations import MAX_HOLD_S

EnvironmentKind = Literal["qemu", "board"]
STAGES = ("build", "deploy", "boot", "test")
StageName = Literal["build", "deploy", "boot", "test"]

TargetName = Annotated[str, StringConstraints(min_length=1, max_length=255, strip_whitespace=True)]
Command = Annotated[str, StringConstraints(min_length=1, max_length=4096)]


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


class TestCase(Strict):
    __test__ = False

    name: Annotated[str, StringConstraints(min_length=1, max_length=128, strip_whitespace=True)]
    command: Command
    timeout_s: int = Field(default=60, ge=1, le=3600)

    @field_validator("command")
    @classmethod
    def _one_line(cls, value: str) -> str:
        if "\n" in value or "\r" in value:
            raise ValueError("a test command is one line (it is typed at the target's shell)")
        return value


class BuildSpec(Strict):
    """How to build; ``{arch}`` in artifact paths becomes the pipeline's architecture."""

    command: BuildCommand | None = None
    defconfig: MakeWord | None = None
    make_target: MakeWord | None = None
    artifacts: list[ArtifactSpec] = Field(min_length=1, max_length=64)
    timeout_s: int = Field(default=3600, ge=10, le=7 * 24 * 3600)


class PipelineCreate(Strict):
    repository_url: RepositoryUrl
    branch: Branch | None = None
    commit: Commit | None = None
    architecture: ArchitectureName
    environment_type: EnvironmentKind
    target: TargetName = Field(default="auto", description="A host or board by name, or `auto`.")
    requirements: Requirements = Field(default_factory=Requirements)
    build: BuildSpec
    boot: BootSpec = Field(default_factory=BootSpec)
    tests: list[TestCase] = Field(min_length=1, max_length=500)
    build_server: Annotated[str, StringConstraints(min_length=1, max_length=255)] = "auto"
    priority: int = Field(default=0, ge=-100, le=100)

    @model_validator(mode="after")
    def _source(self) -> PipelineCreate:
        if self.branch is None and self.commit is None:
            raise ValueError("give a branch, a commit, or both")
        names = [t.name for t in self.tests]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"test names must be unique; repeated: {', '.join(repeated)}")
        return self


class TestPlan(Strict):
    """A test plan file (TOML or JSON): how to build, boot and test; the rest comes from the command line."""

    __test__ = False

    build: BuildSpec
    boot: BootSpec = Field(default_factory=BootSpec)
    requirements: Requirements = Field(default_factory=Requirements)
    tests: list[TestCase] = Field(min_length=1, max_length=500)


class StageRetry(Strict):
    stage: StageName


# -- out


class EnvironmentOut(BaseModel):
    id: int
    url: str
    display: str
    kind: str
    status: str
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


class TestResultOut(BaseModel):
    __test__ = False

    name: str
    command: str
    status: str
    exit_status: int | None
    output: str
    attempt: int
    started_at: datetime
    finished_at: datetime
    duration_s: float


class StageOut(BaseModel):
    name: str
    position: int
    status: str
    attempt: int
    started_at: datetime | None
    finished_at: datetime | None
    duration_s: float | None
    error: str | None
    resources: dict[str, Any]
    log_start: int | None
    log_end: int | None


class PipelineOut(BaseModel):
    id: int
    url: str
    display: str
    repository_url: str
    branch: str | None
    requested_commit: str | None
    resolved_commit: str | None
    architecture: str
    environment_type: str
    target: str
    status: str
    submitted_by: str
    team: str | None
    build_job_id: int | None
    environment_id: int | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None
    cancel_requested_at: datetime | None
    log_size: int
    logs_url: str
    stages: list[StageOut]
    tests: list[TestResultOut] = Field(description="The results of the test stage's latest attempt.")
    spec: dict[str, Any]


class PipelineStatsRow(BaseModel):
    repository_url: str
    branch: str | None
    architecture: str
    total: int
    succeeded: int
    failed: int
    cancelled: int
    success_rate: float | None = Field(description="succeeded / (succeeded + failed); None before any.")


class PipelineLogOut(BaseModel):
    offset: int
    size: int
    next_offset: int
    complete: bool
    data: str
