"""Pipelines as the API takes and shows them (R17)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints, field_validator, model_validator

from labfleet.schemas.builds import (
    ArtifactSpec,
    Branch,
    BuildCommand,
    Commit,
    MakeWord,
    RepositoryUrl,
    SourceOut,
)
from labfleet.schemas.common import ArchitectureName, StatusOut, Strict, require_unique
from labfleet.schemas.environments import BootSpec, EnvironmentKind, Requirements, TargetName

STAGES = ("build", "deploy", "boot", "test")
StageName = Literal["build", "deploy", "boot", "test"]

Command = Annotated[str, StringConstraints(min_length=1, max_length=4096)]


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
        require_unique([t.name for t in self.tests], "test")
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


class TestResultOut(BaseModel):
    __test__ = False

    name: str
    command: str
    status: StatusOut
    exit_status: int | None
    output: str
    attempt: int
    started_at: datetime
    finished_at: datetime
    duration_s: float


class StageOut(BaseModel):
    name: str
    position: int
    status: StatusOut
    attempt: int
    started_at: datetime | None
    finished_at: datetime | None
    duration_s: float | None
    error: str | None
    resources: dict[str, Any]
    log_start: int | None
    log_end: int | None


class PipelineOut(SourceOut):
    environment_type: str
    target: str
    status: StatusOut
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
