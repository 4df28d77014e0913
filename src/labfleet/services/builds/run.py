"""Running one build on its server over SSH: workspace, fetch, build, collect, clean up (R3.4).

Each attempt gets a workspace of its own under ``labfleet-builds/`` in the login
directory. Repositories are cloned once per server into a bare mirror
(``labfleet-builds/cache/``) and fetched afterwards, under ``flock`` so that two builds of
one repository do not fetch over each other; the workspace is a shared clone of the
mirror, checked out at the exact commit, whose hash is recorded. The build runs with the
toolchain's ``ARCH`` and ``CROSS_COMPILE``, its output streamed to the job's log; then each
artifact is copied back over SFTP with its SHA-256 checked on both ends. The workspace is
removed whatever happened. Cancelling the task kills the remote process group.
"""

from __future__ import annotations

import asyncio
import hashlib
import posixpath
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from labfleet.errors import DeviceError, LabfleetError
from labfleet.hw.commands import quote
from labfleet.hw.ssh import SshPool, SshRunner, SshTarget
from labfleet.services.builds.logs import JobLog

__all__ = ["BuildFailed", "BuildPlan", "BuildResult", "BuildRun", "SshPool", "choose_toolchain"]

ROOT = "labfleet-builds"
CLEANUP_TIMEOUT = 60.0
_PREFIX = re.compile(r"^(?P<prefix>.*-)?(?:gcc|cc)(?:-\d+(?:\.\d+)*)?$")


class BuildFailed(LabfleetError):
    """The build ran and failed: a command's exit status, a missing artifact. Not retried."""


@dataclass(frozen=True, slots=True)
class ToolchainChoice:
    architecture: str
    cross_compile: str
    compiler: str


def choose_toolchain(architecture: str, toolchains: list[tuple[str, str, str]]) -> ToolchainChoice:
    """ARCH and CROSS_COMPILE from the server's (compiler, triplet, path) toolchains for the arch.

    A native compiler (``gcc``) wins: no prefix. Otherwise the prefix of a cross compiler's
    name (``aarch64-linux-gnu-gcc`` gives ``aarch64-linux-gnu-``), or its triplet plus ``-``.
    """
    best: ToolchainChoice | None = None
    for compiler, triplet, path in toolchains:
        if compiler != "gcc" and best is not None:
            continue
        name = posixpath.basename(path)
        found = _PREFIX.match(name)
        prefix = (found.group("prefix") or "") if found else f"{triplet}-"
        if found and prefix and name.rsplit("-", 1)[-1][:1].isdigit():
            prefix = f"{triplet}-"  # a versioned name: CROSS_COMPILE needs <prefix>gcc to exist
        choice = ToolchainChoice(architecture, prefix, path)
        if best is None or (prefix == "" and best.cross_compile != ""):
            best = choice
    if best is None:
        raise BuildFailed(f"the server has no toolchain for {architecture} any more")
    return best


@dataclass(frozen=True, slots=True)
class BuildPlan:
    job_id: int
    attempt: int
    repository_url: str
    branch: str | None
    commit: str | None
    command: str | None
    defconfig: str | None
    make_target: str | None
    artifacts: list[dict[str, Any]]
    timeout_s: float
    toolchain: ToolchainChoice
    previous_workspace: str | None = None
    previous_group: str | None = None
    nonce: str = field(default_factory=lambda: secrets.token_hex(4))
    """Sets this attempt's workspace apart from any other labfleet's using the same server."""

    @property
    def workspace(self) -> str:
        return f"{ROOT}/job-{self.job_id}-a{self.attempt}-{self.nonce}"

    @property
    def mirror(self) -> str:
        digest = hashlib.sha256(self.repository_url.encode()).hexdigest()[:20]
        return f"{ROOT}/cache/{digest}.git"


@dataclass(frozen=True, slots=True)
class Collected:
    name: str
    type: str
    path: Path
    sha256: str


@dataclass(frozen=True, slots=True)
class BuildResult:
    commit: str
    files: list[Collected]


def fetch_script(plan: BuildPlan) -> str:
    """Clone or fetch the mirror, make the workspace, check out the exact commit, print its hash."""
    if plan.commit:
        rev = plan.commit
    else:
        assert plan.branch is not None
        rev = f"refs/heads/{plan.branch}"
    mirror, ws, url = quote(plan.mirror), quote(plan.workspace), quote(plan.repository_url)
    return f"""set -e
mkdir -p {quote(ROOT)}/cache
mkdir {ws}
update() {{
  if [ -d {mirror} ]; then
    echo "fetching into the mirror {plan.mirror}"
    git -C {mirror} fetch --prune --quiet origin
  else
    echo "cloning into the mirror {plan.mirror}"
    rm -rf {mirror}.tmp
    git clone --mirror --quiet {url} {mirror}.tmp
    mv {mirror}.tmp {mirror}
  fi
}}
if command -v flock >/dev/null 2>&1; then
  exec 9>{mirror}.lock
  flock 9
fi
update
git clone --quiet --shared --no-checkout {mirror} {ws}/src
exec 9>&-
cd {ws}/src
git -c advice.detachedHead=false checkout --quiet --detach {quote(rev + "^{commit}")} --
echo "labfleet-commit $(git rev-parse HEAD)"
"""


def build_script(plan: BuildPlan) -> str:
    tc = plan.toolchain
    env = f"export ARCH={quote(tc.architecture)} CROSS_COMPILE={quote(tc.cross_compile)}"
    if plan.command is not None:
        body = plan.command
    else:
        steps = []
        if plan.defconfig:
            steps.append(f"make {quote(plan.defconfig)}")
        if plan.make_target:
            steps.append(f'make -j"$(nproc 2>/dev/null || echo 1)" {quote(plan.make_target)}')
        else:
            steps.append('make -j"$(nproc 2>/dev/null || echo 1)"')
        body = " && ".join(steps)
    return f"cd {quote(plan.workspace)}/src && {env} && {body}"


class Tracker(Protocol):
    """Where the worker records what the run learns, as it learns it."""

    async def remote(self, workspace: str | None, group: str | None) -> None:
        """The workspace and the running command's process group (None: nothing running)."""

    async def commit(self, commit: str) -> None:
        """The exact commit checked out."""


class BuildRun:
    """One attempt of a build on a server, driven by the worker that holds the job."""

    def __init__(
        self,
        *,
        pool: SshPool,
        target: SshTarget,
        plan: BuildPlan,
        log: JobLog,
        scratch: Path,
        tracker: Tracker,
    ) -> None:
        self._runner = SshRunner(pool=pool, target=target)
        self._plan = plan
        self._log = log
        self._scratch = scratch
        self._tracker = tracker
        self._deadline = 0.0

    def _remaining(self) -> float:
        left = self._deadline - asyncio.get_running_loop().time()
        if left <= 0:
            raise BuildFailed(f"the build did not finish within {self._plan.timeout_s:g} s")
        return left

    async def run(self) -> BuildResult:
        self._deadline = asyncio.get_running_loop().time() + self._plan.timeout_s
        plan = self._plan
        try:
            await self._clean_previous()
            await self._tracker.remote(plan.workspace, None)
            commit = await self._fetch()
            await self._build()
            files = await self._collect()
            return BuildResult(commit=commit, files=files)
        finally:
            # After a cancel too: the cancel has been delivered, so this runs to its end.
            await self._clean_up()

    async def _clean_previous(self) -> None:
        """A worker that died mid-build may have left its command running and its workspace."""
        plan = self._plan
        if plan.previous_group:
            self._log.note(
                f"stopping what the previous attempt left running (process group {plan.previous_group})"
            )
            await self._runner.kill_group(plan.previous_group, timeout=CLEANUP_TIMEOUT)
        if plan.previous_workspace and plan.previous_workspace.startswith(f"{ROOT}/job-"):
            await self._runner.run(f"rm -rf -- {quote(plan.previous_workspace)}", timeout=CLEANUP_TIMEOUT)

    async def _stream(self, what: str, script: str) -> str:
        """Run ``script``, its output into the log; returns stdout's ``labfleet-commit`` line, if any."""
        commit = ""
        async with self._runner.stream(script, timeout=self._remaining()) as proc:
            group = await proc.process_group()
            await self._tracker.remote(self._plan.workspace, group)
            async for out in proc:
                if out.stream == "stdout" and "labfleet-commit " in out.text:
                    kept = []
                    for line in out.text.splitlines(keepends=True):
                        if line.startswith("labfleet-commit "):
                            commit = line.split()[1]
                        else:
                            kept.append(line)
                    self._log.write("".join(kept))
                else:
                    self._log.write(out.text)
            status = proc.exit_status
        await self._tracker.remote(self._plan.workspace, None)
        if status != 0:
            tail = self._log.tail(3)
            detail = f": {tail.splitlines()[-1]}" if tail else ""
            raise BuildFailed(f"{what} failed with exit status {status}{detail}")
        return commit

    async def _fetch(self) -> str:
        plan = self._plan
        ref = plan.commit or plan.branch
        self._log.note(
            f"fetching {plan.repository_url} at {ref} into {plan.workspace} on {self._runner.where}"
        )
        commit = await self._stream("fetching the repository", fetch_script(plan))
        if not commit:
            raise BuildFailed("fetching the repository did not report the commit checked out")
        self._log.note(f"checked out {commit}")
        await self._tracker.commit(commit)
        return commit

    async def _build(self) -> None:
        plan = self._plan
        tc = plan.toolchain
        self._log.note(
            f"building with ARCH={tc.architecture} "
            f"CROSS_COMPILE={tc.cross_compile or '(native)'} ({tc.compiler})"
        )
        await self._stream("the build", build_script(plan))
        self._log.note("build finished")

    async def _collect(self) -> list[Collected]:
        plan = self._plan
        files: list[Collected] = []
        for i, spec in enumerate(plan.artifacts):
            remote = f"{plan.workspace}/src/{spec['path']}"
            local = self._scratch / f"{i}-{posixpath.basename(spec['path'])}"
            found = await self._runner.run(f"test -f {quote(remote)}", timeout=self._remaining(), check=False)
            if found.exit_status != 0:
                raise BuildFailed(f"artifact {spec['path']} was not produced by the build")
            digest = await self._runner.get(remote=remote, local=local, timeout=self._remaining())
            self._log.note(f"collected {spec['path']} ({local.stat().st_size} bytes, sha256 {digest[:16]}…)")
            files.append(Collected(name=spec["name"], type=spec["type"], path=local, sha256=digest))
        return files

    async def _clean_up(self) -> None:
        try:
            await self._runner.run(f"rm -rf -- {quote(self._plan.workspace)}", timeout=CLEANUP_TIMEOUT)
            await self._tracker.remote(None, None)
        except (DeviceError, LabfleetError, OSError) as exc:
            self._log.note(f"could not remove the workspace {self._plan.workspace}: {exc}")
