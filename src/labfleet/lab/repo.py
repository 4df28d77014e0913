"""The lab's git repository: ``lab/repo/`` committed into a bare repository and served by git daemon.

The build server clones it (``git://127.0.0.1:23418/labfleet-lab.git``, or over the build
server's sshd for a client holding the lab's key) and builds the boot images of the
lab's machines from it. Commits are made with a fixed author and date, so the same
source always gives the same commit hash, also after `lab down` removed the repository;
`lab up` commits only when the source's tree differs from ``main``'s.

git daemon runs as ``nobody``; git refuses to serve a repository that another user
owns unless ``safe.directory`` of a protected configuration allows it, so the daemon gets
a global configuration of its own in the state directory, and the build user (for clones
over SSH) an entry naming the repository in its ``~/.gitconfig``.
"""

from __future__ import annotations

import pwd
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

from labfleet.errors import LabfleetError
from labfleet.lab.layout import BOARDS, BUILD_USER, GIT_PORT, LOOPBACK, REPO_BRANCH, SSH_PORT
from labfleet.lab.paths import LabPaths
from labfleet.lab.procs import Daemon, listening, run, running_pid, start_background, tail, wait_until

IDENTITY = {
    "GIT_AUTHOR_NAME": "labfleet lab",
    "GIT_AUTHOR_EMAIL": "lab@labfleet.invalid",
    "GIT_AUTHOR_DATE": "2024-01-01T00:00:00Z",
    "GIT_COMMITTER_NAME": "labfleet lab",
    "GIT_COMMITTER_EMAIL": "lab@labfleet.invalid",
    "GIT_COMMITTER_DATE": "2024-01-01T00:00:00Z",
}
# Neither this machine's nor root's git configuration may change what gets committed.
ISOLATED = {"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null"}
DAEMON_USER = "nobody"
DAEMON_GROUP = "nogroup"


def daemon(paths: LabPaths) -> Daemon:
    return Daemon("git daemon", paths.runtime("git-daemon.pid"), marker=f"--base-path={paths.git_root}")


def ssh_url(paths: LabPaths) -> str:
    """The repository over the build server's sshd, for clients holding the lab's key."""
    return f"ssh://{BUILD_USER}@{LOOPBACK}:{SSH_PORT}{paths.repo}"


def require_source(paths: LabPaths) -> None:
    if not (paths.repo_source / "Makefile").is_file():
        raise LabfleetError(
            f"virtual lab: {paths.repo_source}/Makefile not found; set LABFLEET_LAB_ASSETS to the repo's lab/"
        )


def _git(paths: LabPaths, *args: str, env: Mapping[str, str] | None = None) -> str:
    return run(
        ["git", *args],
        what=f"git ({paths.repo})",
        timeout=60,
        env={"GIT_DIR": str(paths.repo), **ISOLATED, **(env or {})},
    ).strip()


def _tip(paths: LabPaths) -> tuple[str, str] | None:
    """``main``'s commit and tree, if it has any."""
    out = _git(paths, "for-each-ref", "--format=%(objectname) %(tree)", f"refs/heads/{REPO_BRANCH}")
    if not out:
        return None
    commit, tree = out.split()
    return commit, tree


def publish(paths: LabPaths) -> str:
    """Commit ``lab/repo/`` to ``main`` unless its tree is there already; the commit ``main`` is at."""
    require_source(paths)
    paths.git_root.mkdir(parents=True, exist_ok=True)
    paths.git_root.chmod(0o755)
    if not (paths.repo / "HEAD").exists():
        # shared=0644: readable by git daemon and the build user whatever umask `lab up` runs with.
        run(
            [
                "git",
                "init",
                "--quiet",
                "--bare",
                "--shared=0644",
                f"--initial-branch={REPO_BRANCH}",
                paths.repo,
            ],
            what=f"git init {paths.repo}",
            env=ISOLATED,
        )
    with tempfile.TemporaryDirectory(prefix="labfleet-repo-") as tmp:
        # A throwaway index: the source's tree is hashed straight from lab/repo (its .gitignore applies).
        index = {"GIT_INDEX_FILE": str(Path(tmp) / "index"), "GIT_WORK_TREE": str(paths.repo_source)}
        _git(paths, "add", "--all", ".", env=index)
        tree = _git(paths, "write-tree", env=index)
    tip = _tip(paths)
    if tip is not None and tip[1] == tree:
        return tip[0]
    parent = ["-p", tip[0]] if tip else []
    message = "The lab's boot images" if tip is None else "lab/repo changed"
    commit = _git(paths, "commit-tree", tree, *parent, "-m", message, env=IDENTITY)
    # The old value makes the update fail rather than lose a commit made meanwhile.
    _git(paths, "update-ref", f"refs/heads/{REPO_BRANCH}", commit, tip[0] if tip else "")
    return commit


def install_toolchain(paths: LabPaths, busyboxes: Mapping[str, Path]) -> None:
    """Put what the repository's Makefile takes by default where it looks: each board's static
    busybox (``BUSYBOX``) and the kernel it boots (``KERNEL``, the lab's Debian kernel)."""
    paths.toolchain.mkdir(parents=True, exist_ok=True)
    paths.toolchain.chmod(0o755)
    for board in BOARDS:
        _install(busyboxes[board.name], paths.toolchain_busybox(board), mode=0o755)
        _install(paths.kernel(board), paths.toolchain_kernel(board), mode=0o644)


def _install(source: Path, target: Path, *, mode: int) -> None:
    """Copy ``source`` to ``target`` (readable by the build user) unless it is there already."""
    if target.exists() and target.read_bytes() == source.read_bytes():
        return
    partial = target.with_suffix(".partial")
    shutil.copyfile(source, partial)
    partial.chmod(mode)
    partial.replace(target)


def _trust_for_build_user(paths: LabPaths) -> None:
    """Let the build user's git (over SSH) serve the root-owned repository."""
    try:
        home = Path(pwd.getpwnam(BUILD_USER).pw_dir)
    except KeyError:
        return  # sshd's start creates the user; the next `lab up` comes back here
    config = home / ".gitconfig"
    try:
        if f"directory = {paths.repo}\n" in config.read_text():
            return
    except OSError:
        pass
    run(
        [
            "runuser",
            "-u",
            BUILD_USER,
            "--",
            "git",
            "config",
            "--global",
            "--add",
            "safe.directory",
            paths.repo,
        ],
        what=f"git config of {BUILD_USER}",
        env={"HOME": str(home)},
    )


def _daemon_config(paths: LabPaths) -> Path:
    # "*": git daemon runs upload-pack on "." inside the repository, and git 2.39 compares that
    # path, not the repository's, with safe.directory. --strict-paths keeps it to the one repository.
    config = paths.runtime("git-daemon.gitconfig")
    config.write_text("# labfleet virtual lab: git daemon's own configuration.\n[safe]\n\tdirectory = *\n")
    config.chmod(0o644)
    return config


def is_up(paths: LabPaths) -> bool:
    return running_pid(daemon(paths)) is not None and listening(GIT_PORT)


def start(paths: LabPaths, *, timeout: float = 10) -> bool:
    """git daemon serving the repository, read-only; whether it was started."""
    _trust_for_build_user(paths)
    if is_up(paths):
        return False
    exec_path = Path(run(["git", "--exec-path"], what="git", timeout=10).strip())
    log = paths.runtime("git-daemon.log")
    argv: list[str | Path] = [
        exec_path / "git-daemon",
        "--reuseaddr",
        f"--listen={LOOPBACK}",
        f"--port={GIT_PORT}",
        f"--user={DAEMON_USER}",
        f"--group={DAEMON_GROUP}",
        "--export-all",
        "--informative-errors",
        f"--base-path={paths.git_root}",
        "--strict-paths",
        paths.repo,
    ]
    env = {
        **ISOLATED,
        "GIT_CONFIG_GLOBAL": str(_daemon_config(paths)),
        # Not root's home: upload-pack runs as nobody and would warn that it cannot read it.
        "HOME": pwd.getpwnam(DAEMON_USER).pw_dir,
    }
    start_background(daemon(paths), argv, log=log, env=env)
    wait_until(
        lambda: is_up(paths),
        timeout=timeout,
        what=f"git daemon on {LOOPBACK}:{GIT_PORT}",
        hint=lambda: tail(log),
    )
    return True
