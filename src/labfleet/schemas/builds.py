"""Build jobs as the API takes and shows them (R3)."""

from __future__ import annotations

import posixpath
import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field, StringConstraints, model_validator

from labfleet.schemas.artifacts import ArtifactType
from labfleet.schemas.common import ArchitectureName, StatusOut, Strict, require_unique

_COMMIT = re.compile(r"^[0-9a-f]{7,64}$")
# A branch as git accepts one, minus what a shell or a URL would make of it.
_BRANCH = re.compile(r"^(?!-)(?!.*\.\.)(?!.*//)[A-Za-z0-9._/+-]+(?<![./])$")
_MAKE_WORD = re.compile(r"^[A-Za-z0-9_.+/-]+$")
_SCHEMES = ("git://", "http://", "https://", "ssh://", "file://")
_SCP_LIKE = re.compile(r"^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^\s]+$")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def _repository(value: str) -> str:
    value = value.strip()
    if any(c.isspace() for c in value):
        raise ValueError("a repository URL has no spaces")
    if not (value.startswith(_SCHEMES) or _SCP_LIKE.match(value)):
        raise ValueError("expected a git URL: git://, http(s)://, ssh://, file:// or user@host:path")
    return value


def _commit(value: str) -> str:
    value = value.strip().lower()
    if not _COMMIT.match(value):
        raise ValueError("a commit is 7 to 64 hexadecimal digits")
    return value


def _branch(value: str) -> str:
    if not _BRANCH.match(value):
        raise ValueError("not a branch name git would accept (letters, digits, . _ / + -; no '..')")
    return value


def _relative_path(value: str) -> str:
    if value.startswith("/") or "\\" in value or _CONTROL.search(value):
        raise ValueError("a path relative to the build's workspace, without backslashes")
    normal = posixpath.normpath(value)
    if normal == ".." or normal.startswith("../") or normal == ".":
        raise ValueError("the path must stay inside the build's workspace")
    return normal


def _make_word(value: str) -> str:
    if not _MAKE_WORD.match(value):
        raise ValueError("letters, digits and _ . + / - only")
    return value


def _command(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("control characters are not allowed (newlines and tabs are)")
    if not value.strip():
        raise ValueError("the command is empty")
    return value


RepositoryUrl = Annotated[str, StringConstraints(min_length=1, max_length=1024), AfterValidator(_repository)]
Commit = Annotated[str, AfterValidator(_commit)]
Branch = Annotated[str, StringConstraints(min_length=1, max_length=255), AfterValidator(_branch)]
MakeWord = Annotated[str, StringConstraints(min_length=1, max_length=255), AfterValidator(_make_word)]
BuildCommand = Annotated[str, StringConstraints(max_length=8192), AfterValidator(_command)]


class ArtifactSpec(Strict):
    """A file the build leaves in its workspace, to collect into the artifact store."""

    path: Annotated[str, StringConstraints(min_length=1, max_length=1024), AfterValidator(_relative_path)]
    type: ArtifactType
    name: Annotated[str, StringConstraints(min_length=1, max_length=255)] | None = Field(
        default=None, description="The artifact's name; the file's name when omitted."
    )

    @property
    def artifact_name(self) -> str:
        return self.name or posixpath.basename(self.path)


class BuildJobCreate(Strict):
    repository_url: RepositoryUrl
    branch: Branch | None = Field(default=None, description="Built at its tip unless `commit` is given.")
    commit: Commit | None = Field(default=None, description="The exact commit to build.")
    architecture: ArchitectureName
    command: BuildCommand | None = Field(
        default=None, description="A shell command run in the workspace, with ARCH and CROSS_COMPILE set."
    )
    defconfig: MakeWord | None = Field(default=None, description="`make <defconfig>` runs first.")
    make_target: MakeWord | None = Field(default=None, description="Then `make -j<cores> <target>`.")
    artifacts: list[ArtifactSpec] = Field(default_factory=list, max_length=64)
    server: Annotated[str, StringConstraints(min_length=1, max_length=255)] = Field(
        default="auto", description="`auto`, or a build server's hostname or id."
    )
    priority: int = Field(default=0, ge=-100, le=100, description="Higher runs first.")
    timeout_s: int = Field(default=3600, ge=10, le=7 * 24 * 3600)

    @model_validator(mode="after")
    def _complete(self) -> BuildJobCreate:
        if self.branch is None and self.commit is None:
            raise ValueError("give a branch, a commit, or both")
        if self.command is None and self.defconfig is None and self.make_target is None:
            raise ValueError("give a command, or a defconfig and/or make_target")
        if self.command is not None and (self.defconfig is not None or self.make_target is not None):
            raise ValueError("give either a command or defconfig/make_target, not both")
        require_unique([a.artifact_name for a in self.artifacts], "artifact")
        return self


class SourceOut(BaseModel):
    """What a build job and a pipeline both start with: which one, and what it builds for where."""

    id: int
    url: str
    display: str
    repository_url: str
    branch: str | None
    requested_commit: str | None
    resolved_commit: str | None
    architecture: str


class BuildJobOut(SourceOut):
    command: str | None
    defconfig: str | None
    make_target: str | None
    artifact_specs: list[dict[str, Any]]
    server_choice: str
    build_server_id: int | None
    build_server: str | None
    priority: int
    status: StatusOut
    attempt: int
    retry_of_id: int | None
    submitted_by: str
    team: str | None
    timeout_s: int
    queued_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    estimated_start_at: datetime | None = Field(
        description="For a queued job: when it is expected to start (R3.5)."
    )
    failure_reason: str | None
    cancel_requested_at: datetime | None
    log_size: int
    logs_url: str
    decision: dict[str, Any] | None = Field(
        default=None, description="Why this server: candidates, exclusions, scores (with ?explain=true)."
    )
