"""``health``: a resource's health now, and its capacity."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from labfleet.cli import output
from labfleet.cli.inventory import JsonFlag, get_unless_json

app = typer.Typer(help="A resource's health and capacity.", no_args_is_help=True)


class Kind(StrEnum):
    build_server = "build-server"
    host = "host"
    board = "board"


class WithCapacity(StrEnum):
    build_server = "build-server"
    host = "host"


KindArg = Annotated[Kind, typer.Argument(metavar="KIND", help="build-server, host or board.")]
Ident = Annotated[int, typer.Argument(metavar="ID")]


@app.command()
def show(ctx: typer.Context, kind: KindArg, ident: Ident, as_json: JsonFlag = False) -> None:
    """Its status, the last check and why, its thresholds, its open alerts."""
    found = get_unless_json(ctx, f"/{kind.value}s/{ident}/health", as_json)
    if found is None:
        return
    alerts = found.pop("open_alerts")
    output.show_object(found)
    if alerts:
        rows = [
            {"id": a["id"], "severity": a["severity"], "kind": a["kind"], "message": a["message"]}
            for a in alerts
        ]
        output.show_table(rows, ("id", "severity", "kind", "message"), title=f"{len(alerts)} open alert(s)")


@app.command()
def capacity(
    ctx: typer.Context,
    kind: Annotated[WithCapacity, typer.Argument(metavar="KIND", help="build-server or host.")],
    ident: Ident,
    as_json: JsonFlag = False,
) -> None:
    """What it has, what is taken, what is free, and whether it takes new work."""
    found = get_unless_json(ctx, f"/{kind.value}s/{ident}/capacity", as_json)
    if found is not None:
        output.show_object(found)


@app.command()
def vms(
    ctx: typer.Context, ident: Annotated[int, typer.Argument(metavar="HOST_ID")], as_json: JsonFlag = False
) -> None:
    """The VMs a host's libvirt runs, what owns each, strays and lost ones."""
    found = get_unless_json(ctx, f"/hosts/{ident}/vms", as_json)
    if found is None:
        return
    rows = [
        {
            "name": v["name"],
            "running": v["running"],
            "environment": v["environment_id"] or "",
            "pipeline": v["pipeline_id"] or "",
            "owner": v["owner"] or "",
            "problem": v["problem"] or "",
        }
        for v in found["items"]
    ]
    title = f"{found['name']}: {found['count']} VM(s), {found['strays']} stray, {found['missing']} lost"
    output.show_table(rows, ("name", "running", "environment", "pipeline", "owner", "problem"), title=title)
