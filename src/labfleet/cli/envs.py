"""``envs``: a deployed, booted QEMU VM or board to work on; create (and wait until it is ready),
list, show, release."""

from __future__ import annotations

import time
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.markup import escape

from labfleet.cli import output
from labfleet.cli.build_follow import INTERRUPTED
from labfleet.cli.build_view import short_when, show_decision, status_of
from labfleet.cli.client import Client, err
from labfleet.cli.env_view import ENV_PATH, ENV_SETTLED, env_target, env_warnings, step_line
from labfleet.cli.inventory import ExplainFlag, JsonFlag, client_of, get_unless_json, given

app = typer.Typer(
    help="Environments: a VM or board with a build deployed and booted; create, list, show, release.",
    no_args_is_help=True,
)

Ident = Annotated[int, typer.Argument(metavar="ID", help="The environment's id.")]
_WAIT_POLL_SECONDS = 2.0


class Kind(StrEnum):
    qemu = "qemu"
    board = "board"


# ``create``'s options, named once here so that its signature stays a line a parameter.
KindOpt = Annotated[Kind, typer.Option(help="A QEMU VM on a host, or a board.")]
ArchOpt = Annotated[str, typer.Option(help="Architecture, e.g. x86_64 or arm64.")]
BuildIdOpt = Annotated[
    int | None, typer.Option("--build-id", min=1, help="Deploy this build job's artifacts.")
]
CommitOpt = Annotated[
    str | None, typer.Option(help="Deploy the artifacts of a succeeded build of this commit.")
]
LatestOpt = Annotated[
    bool, typer.Option("--latest", help="Deploy the latest succeeded build of --repo's --branch.")
]
RepoOpt = Annotated[str | None, typer.Option(help="The repository (with --commit or --latest).")]
BranchOpt = Annotated[str | None, typer.Option(help="The branch (with --latest).")]
TargetOpt = Annotated[str, typer.Option(help="auto, or a host's hostname or a board's name.")]
VcpusOpt = Annotated[int | None, typer.Option(min=1, help="The VM's vCPUs (qemu).")]
MemoryOpt = Annotated[int | None, typer.Option("--memory-mb", min=64, help="The VM's memory (qemu).")]
BoardTypeOpt = Annotated[str | None, typer.Option("--board-type", help="Only boards of this type (board).")]
PeripheralOpt = Annotated[
    list[str] | None,
    typer.Option(help="A peripheral the board must have; repeatable (board)."),
]
BootPatternOpt = Annotated[
    str | None, typer.Option("--boot-pattern", help="Regular expression the console shows once booted.")
]
BootTimeoutOpt = Annotated[
    int | None, typer.Option("--boot-timeout", min=1, help="Seconds the boot may take.")
]
ExpiresInOpt = Annotated[
    int | None, typer.Option("--expires-in", help="Seconds until it is released by itself.")
]
PurposeOpt = Annotated[str | None, typer.Option(help="What it is for.")]
ExplainOpt = Annotated[
    bool, typer.Option("--explain", help="How the target was chosen: candidates, exclusions, scores.")
]
WaitOpt = Annotated[
    bool, typer.Option("--wait", help="Wait until it is ready (exit 0) or has failed (exit 1).")
]


@app.command()
def create(
    ctx: typer.Context,
    kind: KindOpt,
    arch: ArchOpt,
    build_id: BuildIdOpt = None,
    commit: CommitOpt = None,
    latest: LatestOpt = False,
    repo: RepoOpt = None,
    branch: BranchOpt = None,
    target: TargetOpt = "auto",
    vcpus: VcpusOpt = None,
    memory_mb: MemoryOpt = None,
    board_type: BoardTypeOpt = None,
    peripheral: PeripheralOpt = None,
    boot_pattern: BootPatternOpt = None,
    boot_timeout: BootTimeoutOpt = None,
    expires_in: ExpiresInOpt = None,
    purpose: PurposeOpt = None,
    explain: ExplainOpt = False,
    wait: WaitOpt = False,
    as_json: JsonFlag = False,
) -> None:
    """Create an environment: reserve a host or board, deploy a build's artifacts, boot.

    Refused when nothing can take it now, with the alternatives and what each lacks.
    """
    _check_which_build(build_id=build_id, commit=commit, latest=latest, repo=repo, branch=branch)
    choice = {
        "build_id": build_id,
        "commit": commit,
        "latest": latest or None,
        "repository_url": repo,
        "branch": branch,
    }
    requirements = {
        "vcpus": vcpus,
        "memory_mb": memory_mb,
        "board_type": board_type,
        "peripherals": peripheral,
    }
    boot = {"pattern": boot_pattern, "timeout_s": boot_timeout}
    body: dict[str, Any] = {
        "kind": kind.value,
        "architecture": arch,
        "artifacts": _given(choice),
        "target": target,
        "requirements": _given(requirements),
        "boot": _given(boot),
        "purpose": purpose,
        "expires_in_s": expires_in,
    }
    api = client_of(ctx)
    env = api.request("POST", ENV_PATH, json=_given(body), params={"explain": explain})
    _show_created(api, env, explain=explain, wait=wait, as_json=as_json)


def _check_which_build(
    *, build_id: int | None, commit: str | None, latest: bool, repo: str | None, branch: str | None
) -> None:
    """One way to say which build, with the options that go with it."""
    ways = sum((build_id is not None, commit is not None, latest))
    if ways != 1:
        raise typer.BadParameter(
            "give one of --build-id, --commit, or --latest (with --repo and --branch)",
            param_hint="--build-id/--commit/--latest",
        )
    if latest and (repo is None or branch is None):
        raise typer.BadParameter("--latest needs --repo and --branch", param_hint="--latest")
    if branch is not None and not latest:
        raise typer.BadParameter("--branch goes with --latest", param_hint="--branch")
    if build_id is not None and repo is not None:
        raise typer.BadParameter("--repo goes with --commit or --latest", param_hint="--repo")


def _show_created(api: Client, env: dict[str, Any], *, explain: bool, wait: bool, as_json: bool) -> None:
    """The environment as created; with ``wait``, as it settles, exiting 0 only if it is ready."""
    if wait:
        if not as_json:
            _print_created(env, explain=explain)
        env = _wait(api, env, quiet=as_json)
        if as_json:
            output.show_json(env)
        else:
            _print_settled(env)
        raise typer.Exit(0 if status_of(env) == "ready" else 1)
    if as_json:
        output.show_json(env)
    else:
        _print_created(env, explain=explain)


def _given(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None and v != {} and v != []}


def _print_created(env: dict[str, Any], *, explain: bool) -> None:
    output.out.print(
        f"environment [bold]{env['id']}[/bold] created: {escape(env['kind'])} "
        f"{escape(env['architecture'])} on {escape(env_target(env))} — {escape(status_of(env))}; "
        f"held until {escape(str(env['expires_at']))}"
    )
    _print_warnings(env)
    if explain:
        show_decision(env)


def _print_warnings(env: dict[str, Any]) -> None:
    for warning in env_warnings(env):
        output.out.print(f"  [yellow]warning[/yellow]: {escape(warning)}")


def _print_settled(env: dict[str, Any]) -> None:
    ident, status = env["id"], status_of(env)
    if status == "ready":
        facts = [
            f"{name} {escape(str(env[key]))}"
            for name, key in (("console", "console_url"), ("domain", "domain_name"))
            if env.get(key)
        ]
        output.out.print(
            f"[green]environment {ident} ready[/green] on {escape(env_target(env))}"
            + (f": {'; '.join(facts)}" if facts else "")
            + f" (release it with: labfleet envs release {ident})",
            highlight=False,
        )
        return
    reason = env.get("error") or env.get("release_reason") or "no reason recorded"
    err.print(f"[red]environment {ident} {escape(status)}[/red]: {escape(str(reason))}", highlight=False)


def _wait(api: Client, env: dict[str, Any], *, quiet: bool) -> dict[str, Any]:
    """Poll the environment until it settles; its status and new steps on stderr as they change."""
    ident = env["id"]
    said_status = ""
    said_steps = 0
    try:
        while True:
            status = status_of(env)
            if status != said_status and not quiet:
                err.print(f"environment {ident}: {status}", highlight=False, markup=False)
            said_status = status
            steps = list(env.get("steps") or ())
            for step in steps[said_steps:]:
                if not quiet:
                    err.print(f"  {step_line(step)}", highlight=False, markup=False)
            said_steps = len(steps)
            if status in ENV_SETTLED:
                return env
            time.sleep(_WAIT_POLL_SECONDS)
            env = api.request("GET", f"{ENV_PATH}/{ident}")
    except KeyboardInterrupt:
        err.print(
            f"stopped waiting for environment {ident}; it goes on. See how it is with:\n"
            f"  labfleet envs show {ident}",
            highlight=False,
        )
        raise typer.Exit(INTERRUPTED) from None


@app.command("list")
def list_(
    ctx: typer.Context,
    status: Annotated[
        str | None,
        typer.Option(help="Only this status: pending, provisioning, ready, failed, releasing, released."),
    ] = None,
    owner: Annotated[str | None, typer.Option(help="Only this owner's.")] = None,
    limit: int = 50,
    offset: int = 0,
    as_json: JsonFlag = False,
) -> None:
    """List environments, newest first."""
    params: list[tuple[str, str | int]] = [("limit", limit), ("offset", offset)]
    params += given(("status", status), ("owner", owner))
    page = get_unless_json(ctx, ENV_PATH, as_json, params=params)
    if page is None:
        return
    rows = [
        {
            "id": e["id"],
            "kind": e["kind"],
            "status": status_of(e),
            "arch": e["architecture"],
            "on": env_target(e),
            "owner": e.get("owner"),
            "purpose": e.get("purpose"),
            "pipeline": e.get("pipeline_id"),
            "expires": short_when(e.get("expires_at")),
            "warnings": len(env_warnings(e)) or None,
        }
        for e in page["items"]
    ]
    columns = ("id", "kind", "status", "arch", "on", "owner", "purpose", "pipeline", "expires", "warnings")
    output.show_table(rows, columns, title=f"{page['count']} environment(s)")


@app.command()
def show(ctx: typer.Context, ident: Ident, explain: ExplainFlag = False, as_json: JsonFlag = False) -> None:
    """Show one environment: where it is, its console, each provisioning step."""
    env = get_unless_json(ctx, f"{ENV_PATH}/{ident}", as_json, params={"explain": explain})
    if env is None:
        return
    hidden = ("decision", "steps", "warnings")
    output.show_object({k: escape(v) if isinstance(v, str) else v for k, v in env.items() if k not in hidden})
    _print_warnings(env)
    steps = list(env.get("steps") or ())
    if steps:
        output.out.print("[bold]steps[/bold]:")
    for step in steps:
        output.out.print(f"  {escape(step_line(step))}", highlight=False)
    if explain:
        show_decision(env)


@app.command()
def release(ctx: typer.Context, ident: Ident, as_json: JsonFlag = False) -> None:
    """Release: what it holds (a VM on its host, a board, the reservation) is given back."""
    env = client_of(ctx).request("POST", f"{ENV_PATH}/{ident}/release")
    if as_json:
        output.show_json(env)
    else:
        output.out.print(f"environment {ident}: {escape(status_of(env))}")
