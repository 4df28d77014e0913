"""``artifacts``: what builds stored; download one (verified), pin it, run retention."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated, Any

import typer

from labfleet.cli import output
from labfleet.cli.client import err
from labfleet.cli.inventory import JsonFlag, client_of, get_unless_json, given, show
from labfleet.schemas.artifacts import ArtifactType

app = typer.Typer(help="Artifacts: list, show, download, pin, retention.", no_args_is_help=True)

PATH = "/artifacts"
Ident = Annotated[int, typer.Argument(metavar="ID")]
COLUMNS = ("id", "name", "type", "architecture", "branch", "build", "size", "pinned", "sha256")


def _row(a: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": a["id"],
        "name": a["name"],
        "type": a["type"],
        "architecture": a["architecture"],
        "branch": a.get("branch") or "",
        "build": a.get("build_job_id") or "",
        "size": a["size"],
        "pinned": a["pinned"],
        "sha256": a["sha256"][:12],
    }


@app.command("list")
def list_(
    ctx: typer.Context,
    build_id: Annotated[int | None, typer.Option("--build-id", help="Stored by this build.")] = None,
    repository: Annotated[str | None, typer.Option(help="Repository URL.")] = None,
    branch: str | None = None,
    architecture: str | None = None,
    type_: Annotated[ArtifactType | None, typer.Option("--type")] = None,
    limit: int = 50,
    offset: int = 0,
    as_json: JsonFlag = False,
) -> None:
    """List artifacts, newest first."""
    params: dict[str, Any] = {"limit": limit, "offset": offset}
    params |= dict(
        given(
            ("build_id", build_id),
            ("repository", repository),
            ("branch", branch),
            ("architecture", architecture),
            ("type", type_),
        )
    )
    page = get_unless_json(ctx, PATH, as_json, params=params)
    if page is not None:
        output.show_table([_row(a) for a in page["items"]], COLUMNS, title=f"{page['count']} artifact(s)")


@app.command("show")
def show_(ctx: typer.Context, ident: Ident, as_json: JsonFlag = False) -> None:
    """Show one artifact: where it came from, its digest, who refers to it."""
    show(client_of(ctx).request("GET", f"{PATH}/{ident}"), as_json)


@app.command()
def latest(
    ctx: typer.Context,
    repository: Annotated[str, typer.Option(help="Repository URL.")],
    branch: Annotated[str, typer.Option()],
    architecture: Annotated[str, typer.Option()],
    as_json: JsonFlag = False,
) -> None:
    """The artifacts of the newest succeeded build of a branch and architecture."""
    params = {"repository": repository, "branch": branch, "architecture": architecture}
    found = get_unless_json(ctx, f"{PATH}/latest", as_json, params=params)
    if found is not None:
        title = f"build {found['build_job_id']} at {found['commit']}: {found['count']} artifact(s)"
        output.show_table([_row(a) for a in found["items"]], COLUMNS, title=title)


@app.command()
def download(
    ctx: typer.Context,
    ident: Ident,
    out: Annotated[Path, typer.Option("--output", "-o", help="Where to write it.")],
) -> None:
    """Download an artifact, checking its SHA-256 as it arrives; a mismatch leaves no file."""
    client = client_of(ctx)
    meta = client.request("GET", f"{PATH}/{ident}")
    partial = out.with_name(out.name + ".part")
    digest = hashlib.sha256()
    with partial.open("wb") as f:
        for chunk in client.stream(f"{PATH}/{ident}/download"):
            digest.update(chunk)
            f.write(chunk)
    if digest.hexdigest() != meta["sha256"]:
        partial.unlink()
        got, want = digest.hexdigest(), meta["sha256"]
        err.print(f"[red]error:[/red] artifact {ident} arrived with SHA-256 {got}, not {want}")
        raise typer.Exit(1)
    partial.replace(out)
    output.out.print(f"{out}: {meta['size']} bytes, sha256 {meta['sha256']}")


@app.command()
def pin(ctx: typer.Context, ident: Ident, as_json: JsonFlag = False) -> None:
    """Pin an artifact: retention keeps it whatever its age."""
    show(client_of(ctx).request("POST", f"{PATH}/{ident}/pin"), as_json)


@app.command()
def unpin(ctx: typer.Context, ident: Ident, as_json: JsonFlag = False) -> None:
    """Unpin an artifact: retention may remove it again."""
    show(client_of(ctx).request("DELETE", f"{PATH}/{ident}/pin"), as_json)


@app.command()
def retention(
    ctx: typer.Context,
    keep_last: Annotated[
        int | None, typer.Option(help="Instead of the settings' keep_last, this once.")
    ] = None,
    max_age_days: Annotated[int | None, typer.Option(help="Instead of the settings' max_age_days.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Apply the retention policy now; lists what it removed."""
    body = dict(given(("keep_last", keep_last), ("max_age_days", max_age_days)))
    done = client_of(ctx).request("POST", f"{PATH}/retention", json=body or None)
    if as_json:
        output.show_json(done)
        return
    title = f"removed {done['count']} artifact(s) and {len(done['blobs_removed'])} blob(s)"
    output.show_table([_row(a) for a in done["items"]], COLUMNS, title=title)
