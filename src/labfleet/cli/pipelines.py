"""``pipelines``: build, deploy, boot and test in one go (and follow it live); list, show with the
report, cancel, retry a stage, logs, success rates."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from labfleet.cli import output
from labfleet.cli.build_follow import emit
from labfleet.cli.build_view import ref_of, short_when, status_of
from labfleet.cli.inventory import JsonFlag, client_of, get_unless_json, given
from labfleet.cli.pipeline_follow import follow_and_exit, print_report
from labfleet.cli.pipeline_report import created_line, current_stage, rate_text, tests_summary, took_of
from labfleet.cli.pipeline_view import PATH
from labfleet.cli.plan_file import PlanError, load_plan, plan_body

app = typer.Typer(
    help="Pipelines: build, deploy, boot and test (follow live); list, show, cancel, retry, logs, stats.",
    no_args_is_help=True,
)

Ident = Annotated[int, typer.Argument(metavar="ID", help="The pipeline's id.")]
Follow = Annotated[
    bool,
    typer.Option(
        "--follow",
        "-f",
        help="Show progress and the log live until the pipeline ends; exit 1 unless it succeeds.",
    ),
]
Quiet = Annotated[
    bool, typer.Option("--quiet", "-q", help="While following: progress and the report, not the log.")
]


class EnvType(StrEnum):
    qemu = "qemu"
    board = "board"


class Stage(StrEnum):
    """The stages, as ``schemas.pipelines.STAGES`` names them."""

    build = "build"
    deploy = "deploy"
    boot = "boot"
    test = "test"


@app.command()
def run(
    ctx: typer.Context,
    repo: Annotated[str, typer.Option(help="Git URL of the repository to build.")],
    arch: Annotated[str, typer.Option(help="Architecture to build for and test on, e.g. x86_64 or arm64.")],
    test_plan: Annotated[
        Path,
        typer.Option(
            "--test-plan",
            help="TOML or JSON file: build (command or defconfig/make_target, artifacts; {arch} in "
            "their paths), boot, requirements, tests.",
        ),
    ],
    branch: Annotated[
        str | None, typer.Option(help="Branch, built at its tip unless --commit is given.")
    ] = None,
    commit: Annotated[str | None, typer.Option(help="Exact commit to build.")] = None,
    env_type: Annotated[
        EnvType, typer.Option("--env-type", help="Test in a QEMU VM or on a board.")
    ] = EnvType.qemu,
    target: Annotated[str, typer.Option(help="auto, or a host's hostname or a board's name.")] = "auto",
    build_server: Annotated[
        str, typer.Option("--build-server", help="auto, or a build server's hostname or id.")
    ] = "auto",
    priority: Annotated[int | None, typer.Option(help="-100 to 100; higher runs first.")] = None,
    follow: Follow = False,
    quiet: Quiet = False,
    as_json: JsonFlag = False,
) -> None:
    """Run a pipeline: build, deploy the artifacts, boot, run the test plan's tests."""
    if branch is None and commit is None:
        raise typer.BadParameter("give a branch, a commit, or both", param_hint="--branch/--commit")
    try:
        plan = load_plan(test_plan)
    except PlanError as exc:
        raise typer.BadParameter("\n".join([str(exc.path), *exc.problems]), param_hint="--test-plan") from exc
    body: dict[str, Any] = {
        "repository_url": repo,
        "branch": branch,
        "commit": commit,
        "architecture": arch,
        "environment_type": env_type.value,
        "target": target,
        "build_server": build_server,
        "priority": priority,
    }
    body = {k: v for k, v in body.items() if v is not None} | plan_body(plan)
    api = client_of(ctx)
    pipeline = api.request("POST", PATH, json=body)
    if as_json:
        output.show_json(pipeline)
    else:
        output.out.print(escape(created_line(pipeline)), highlight=False, soft_wrap=True)
        output.out.print(f"  {escape(str(pipeline.get('url')))}", highlight=False)
    if follow:
        follow_and_exit(ctx, api, pipeline, 0, quiet=quiet)


@app.command("follow")
def follow_(
    ctx: typer.Context,
    ident: Ident,
    offset: Annotated[int, typer.Option(min=0, help="Start the log at this byte.")] = 0,
    quiet: Quiet = False,
) -> None:
    """Follow a pipeline to its end: progress, the log, then the report (exit 0 only if it succeeded)."""
    api = client_of(ctx)
    pipeline = api.request("GET", f"{PATH}/{ident}")
    follow_and_exit(ctx, api, pipeline, offset, quiet=quiet)


@app.command("list")
def list_(
    ctx: typer.Context,
    status: Annotated[
        str | None, typer.Option(help="Only this status: queued, running, succeeded, failed, cancelled.")
    ] = None,
    repo: Annotated[str | None, typer.Option(help="Only this repository URL.")] = None,
    branch: Annotated[str | None, typer.Option(help="Only this branch.")] = None,
    arch: Annotated[str | None, typer.Option(help="Only this architecture.")] = None,
    limit: int = 50,
    offset: int = 0,
    as_json: JsonFlag = False,
) -> None:
    """List pipelines, newest first."""
    params: list[tuple[str, str | int]] = [("limit", limit), ("offset", offset)]
    params += given(("status", status), ("repository_url", repo), ("branch", branch), ("architecture", arch))
    page = get_unless_json(ctx, PATH, as_json, params=params)
    if page is None:
        return
    rows = [
        {
            "id": p["id"],
            "status": status_of(p),
            "stage": current_stage(p),
            "tests": tests_summary(p),
            "arch": p["architecture"],
            "branch/commit": ref_of(p),
            "env": p["environment_type"] + (f":{p['target']}" if p.get("target") != "auto" else ""),
            "created": short_when(p.get("created_at")),
            "took": took_of(p),
        }
        for p in page["items"]
    ]
    columns = (
        "id",
        "status",
        "stage",
        "tests",
        "arch",
        "branch/commit",
        "env",
        "created",
        "took",
    )
    output.show_table(rows, columns, title=f"{page['count']} pipeline(s)")


@app.command()
def show(ctx: typer.Context, ident: Ident, as_json: JsonFlag = False) -> None:
    """Show one pipeline: what it ran and where, each stage, each test's result."""
    p = client_of(ctx).request("GET", f"{PATH}/{ident}")
    if as_json:
        output.show_json(p)
        return
    print_report(p)
    details = {
        "repository": p.get("repository_url"),
        "commit": p.get("resolved_commit") or p.get("requested_commit"),
        "submitted by": p.get("submitted_by"),
        "created": p.get("created_at"),
        "started": p.get("started_at"),
        "finished": p.get("finished_at"),
        "build job": p.get("build_job_id"),
        "environment": p.get("environment_id"),
        "cancel asked": p.get("cancel_requested_at"),
        "log": f"{p.get('log_size', 0)} bytes (labfleet pipelines logs {ident})",
        "url": p.get("url"),
    }
    output.show_object({k: escape(v) if isinstance(v, str) else v for k, v in details.items()})


@app.command()
def cancel(ctx: typer.Context, ident: Ident, as_json: JsonFlag = False) -> None:
    """Cancel a pipeline: a queued one at once, a running one by its worker (the stage in hand stops)."""
    p = client_of(ctx).request("POST", f"{PATH}/{ident}/cancel")
    if as_json:
        output.show_json(p)
    elif status_of(p) == "running":
        output.out.print(
            f"pipeline {ident}: cancel asked; its worker stops the {current_stage(p) or 'current'} stage and "
            f"releases what it holds (`labfleet pipelines show {ident}` tells when it is cancelled)"
        )
    else:
        output.out.print(f"pipeline {ident}: {escape(status_of(p))}")


@app.command()
def retry(
    ctx: typer.Context,
    ident: Ident,
    stage: Annotated[Stage, typer.Option(help="Run again from this stage (the ones before are kept).")],
    follow: Follow = False,
    quiet: Quiet = False,
    as_json: JsonFlag = False,
) -> None:
    """Run a finished pipeline again from a stage."""
    api = client_of(ctx)
    p = api.request("POST", f"{PATH}/{ident}/retry", json={"stage": stage.value})
    if as_json:
        output.show_json(p)
    else:
        output.out.print(
            escape(created_line(p, f"retried from {stage.value}")), highlight=False, soft_wrap=True
        )
    if follow:
        # Only what the retry writes: the log so far was shown before.
        follow_and_exit(ctx, api, p, int(p.get("log_size") or 0), quiet=quiet)


@app.command()
def logs(
    ctx: typer.Context,
    ident: Ident,
    stage: Annotated[Stage | None, typer.Option(help="Only this stage's part of the log.")] = None,
    offset: Annotated[int, typer.Option(min=0, help="Start at this byte of the log.")] = 0,
) -> None:
    """Print a pipeline's log (``labfleet pipelines follow`` streams it live)."""
    api = client_of(ctx)
    params: dict[str, Any] = {"stage": stage.value} if stage is not None else {}
    while True:
        page = api.request("GET", f"{PATH}/{ident}/logs", params={**params, "offset": offset})
        data, following = str(page.get("data", "")), int(page.get("next_offset", offset))
        emit(data.encode())
        if not data or following <= offset or following >= int(page.get("size", 0)):
            return
        offset = following


@app.command()
def stats(
    ctx: typer.Context,
    repo: Annotated[str | None, typer.Option(help="Only this repository URL.")] = None,
    branch: Annotated[str | None, typer.Option(help="Only this branch.")] = None,
    arch: Annotated[str | None, typer.Option(help="Only this architecture.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Success rates by repository, branch and architecture."""
    params = given(("repository_url", repo), ("branch", branch), ("architecture", arch))
    page = get_unless_json(ctx, f"{PATH}/stats", as_json, params=params)
    if page is None:
        return
    rows = [
        {
            "repository": r["repository_url"],
            "branch": r.get("branch"),
            "arch": r["architecture"],
            "runs": r["total"],
            "succeeded": r["succeeded"],
            "failed": r["failed"],
            "cancelled": r["cancelled"],
            "success rate": rate_text(r.get("success_rate")),
        }
        for r in page["items"]
    ]
    columns = ("repository", "branch", "arch", "runs", "succeeded", "failed", "cancelled", "success rate")
    output.show_table(rows, columns, title=f"{page['count']} repository/branch/architecture group(s)")
