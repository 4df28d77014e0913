"""``builds``: submit a build (and follow its log), list, show with the placement, cancel, retry, logs."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape

from labfleet.cli import output
from labfleet.cli.build_follow import LogClient, emit, follow_and_exit
from labfleet.cli.build_view import (
    PATH,
    eta_of,
    print_placed,
    ref_of,
    server_of,
    short_when,
    show_decision,
    status_of,
)
from labfleet.cli.inventory import JsonFlag, client_of, get_unless_json, given
from labfleet.schemas.artifacts import ArtifactType

app = typer.Typer(
    help="Build jobs: submit (and follow the log live), list, show, cancel, retry, logs.",
    no_args_is_help=True,
)

Ident = Annotated[int, typer.Argument(metavar="ID", help="The build job's id.")]
Follow = Annotated[
    bool,
    typer.Option(
        "--follow", "-f", help="Stream the log live until the build ends; exit 1 unless it succeeds."
    ),
]


def _artifact(text: str) -> dict[str, str]:
    path, sep, rest = text.partition(":")
    kind, _, name = rest.partition(":")
    if not sep or not path or not kind:
        raise typer.BadParameter(f"{text!r}: expected PATH:TYPE[:NAME]", param_hint="--artifact")
    if kind not in ArtifactType.__members__:
        choices = ", ".join(t.value for t in ArtifactType)
        raise typer.BadParameter(
            f"{text!r}: unknown type {kind!r}; one of {choices}", param_hint="--artifact"
        )
    return {"path": path, "type": kind} | ({"name": name} if name else {})


@app.command()
def submit(
    ctx: typer.Context,
    repo: Annotated[str, typer.Option(help="Git URL of the repository to build.")],
    arch: Annotated[str, typer.Option(help="Architecture to build for, e.g. x86_64 or arm64.")],
    branch: Annotated[
        str | None, typer.Option(help="Branch, built at its tip unless --commit is given.")
    ] = None,
    commit: Annotated[str | None, typer.Option(help="Exact commit to build.")] = None,
    command: Annotated[
        str | None, typer.Option(help="Shell command run in the workspace (ARCH, CROSS_COMPILE set).")
    ] = None,
    defconfig: Annotated[
        str | None, typer.Option(help="`make DEFCONFIG` first (instead of --command).")
    ] = None,
    target: Annotated[str | None, typer.Option(help="Then `make -jN TARGET` (instead of --command).")] = None,
    artifact: Annotated[
        list[str] | None,
        typer.Option(help="PATH:TYPE[:NAME] of a file to collect, e.g. out/bzImage:kernel; repeat for more."),
    ] = None,
    server: Annotated[str, typer.Option(help="auto, or a build server's hostname or id.")] = "auto",
    priority: Annotated[int | None, typer.Option(help="-100 to 100; higher runs first.")] = None,
    timeout: Annotated[int | None, typer.Option(help="Seconds the build may take.")] = None,
    follow: Follow = False,
    as_json: JsonFlag = False,
) -> None:
    """Submit a build: shows where it was placed and why, and when it should start."""
    if branch is None and commit is None:
        raise typer.BadParameter("give a branch, a commit, or both", param_hint="--branch/--commit")
    if command is not None and (defconfig is not None or target is not None):
        raise typer.BadParameter(
            "give either --command or --defconfig/--target, not both", param_hint="--command"
        )
    if command is None and defconfig is None and target is None:
        raise typer.BadParameter("give --command, or --defconfig and/or --target", param_hint="--command")
    body: dict[str, Any] = {
        "repository_url": repo,
        "branch": branch,
        "commit": commit,
        "architecture": arch,
        "command": command,
        "defconfig": defconfig,
        "make_target": target,
        "artifacts": [_artifact(a) for a in artifact or ()],
        "server": server,
        "priority": priority,
        "timeout_s": timeout,
    }
    api = client_of(ctx)
    job = api.request("POST", PATH, json={k: v for k, v in body.items() if v is not None})
    if as_json:
        output.show_json(job)
    else:
        print_placed(job, "submitted")
    if follow:
        follow_and_exit(ctx, api, job, 0)


@app.command("list")
def list_(
    ctx: typer.Context,
    status: Annotated[list[str] | None, typer.Option(help="Only these statuses; repeat for more.")] = None,
    arch: Annotated[str | None, typer.Option(help="Only this architecture.")] = None,
    repo: Annotated[str | None, typer.Option(help="Only this repository URL.")] = None,
    branch: Annotated[str | None, typer.Option(help="Only this branch.")] = None,
    limit: int = 50,
    offset: int = 0,
    as_json: JsonFlag = False,
) -> None:
    """List build jobs, newest first; queued ones with their estimated start."""
    params: list[tuple[str, str | int]] = [("limit", limit), ("offset", offset)]
    params += [("status", s) for s in status or ()]
    params += given(("architecture", arch), ("repository", repo), ("branch", branch))
    page = get_unless_json(ctx, PATH, as_json, params=params)
    if page is None:
        return
    rows = [
        {
            "id": j["id"],
            "status": j["status"],
            "arch": j["architecture"],
            "branch/commit": ref_of(j),
            "server": server_of(j),
            "priority": j["priority"],
            "queued/started": short_when(j.get("started_at")) or short_when(j.get("queued_at")),
            "estimated start": eta_of(j.get("estimated_start_at"), short=True)
            if status_of(j) == "queued"
            else None,
        }
        for j in page["items"]
    ]
    columns = (
        "id",
        "status",
        "arch",
        "branch/commit",
        "server",
        "priority",
        "queued/started",
        "estimated start",
    )
    output.show_table(rows, columns, title=f"{page['count']} build job(s)")


@app.command()
def show(
    ctx: typer.Context,
    ident: Ident,
    explain: Annotated[
        bool, typer.Option("--explain", help="The placement decision: candidates, exclusions, score parts.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Show one build job."""
    job = client_of(ctx).request("GET", f"{PATH}/{ident}", params={"explain": explain})
    if as_json:
        output.show_json(job)
        return
    output.show_object({k: escape(v) if isinstance(v, str) else v for k, v in job.items() if k != "decision"})
    if explain:
        show_decision(job)


@app.command()
def cancel(ctx: typer.Context, ident: Ident, as_json: JsonFlag = False) -> None:
    """Cancel a queued build at once, or have a running one stopped by its worker."""
    job = client_of(ctx).request("POST", f"{PATH}/{ident}/cancel")
    if as_json:
        output.show_json(job)
    elif status_of(job) == "running":
        where = escape(server_of(job) or "its server")
        output.out.print(
            f"build job {ident}: cancel asked; its worker on {where} kills the build and removes "
            f"the workspace (`labfleet builds show {ident}` tells when it is cancelled)"
        )
    else:
        output.out.print(f"build job {ident}: {output.cell(job.get('status'))}")


@app.command()
def retry(ctx: typer.Context, ident: Ident, follow: Follow = False, as_json: JsonFlag = False) -> None:
    """Run a finished build again, as a new job linked to it."""
    api = client_of(ctx)
    job = api.request("POST", f"{PATH}/{ident}/retry")
    if as_json:
        output.show_json(job)
    else:
        print_placed(job, f"submitted (retry of {ident})")
    if follow:
        follow_and_exit(ctx, api, job, 0)


@app.command()
def logs(
    ctx: typer.Context,
    ident: Ident,
    offset: Annotated[int, typer.Option(min=0, help="Start at this byte of the log.")] = 0,
    follow: Follow = False,
) -> None:
    """Print a build's log; with --follow, stream it until the build ends."""
    api = LogClient(ctx.find_root().obj)
    if follow:
        job = api.request("GET", f"{PATH}/{ident}")
        follow_and_exit(ctx, api, job, offset)
    while True:
        response = api.text(f"{PATH}/{ident}/logs", params={"offset": offset})
        emit(response.content)
        offset = int(response.headers.get("X-Log-Offset", offset)) + len(response.content)
        if not response.content or offset >= int(response.headers.get("X-Log-Size", 0)):
            return
