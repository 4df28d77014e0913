"""``reservations``: hold a host's capacity or a whole board; list, show, extend, release."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from labfleet.cli import output
from labfleet.cli.inventory import JsonFlag, client_of

app = typer.Typer(
    help="Reservations: hold a host's capacity or a whole board until release or expiry.",
    no_args_is_help=True,
)

PATH = "/reservations"
Ident = Annotated[int, typer.Argument(metavar="ID", help="The reservation's id.")]


def _show(r: dict[str, Any], as_json: bool) -> None:
    if as_json:
        output.show_json(r)
    else:
        output.show_object(r)


@app.command()
def create(
    ctx: typer.Context,
    purpose: Annotated[str, typer.Option(help="What it is for (a CI job, a person's debugging).")],
    host: Annotated[int | None, typer.Option(help="Reserve capacity on this host (id).")] = None,
    board: Annotated[int | None, typer.Option(help="Reserve this whole board (id).")] = None,
    vcpus: Annotated[int, typer.Option(min=0)] = 0,
    memory_mb: Annotated[int, typer.Option("--memory-mb", min=0)] = 0,
    disk_gb: Annotated[float, typer.Option("--disk-gb", min=0)] = 0.0,
    expires_in: Annotated[
        int, typer.Option("--expires-in", help="Seconds until it is released by itself.")
    ] = 3600,
    as_json: JsonFlag = False,
) -> None:
    """Reserve; refused (with what is in the way) when the host lacks room or the board is held."""
    body: dict[str, Any] = {"purpose": purpose, "expires_in_s": expires_in}
    if host is not None:
        body |= {"host_id": host, "vcpus": vcpus, "memory_mb": memory_mb, "disk_gb": disk_gb}
    if board is not None:
        body["board_id"] = board
    r = client_of(ctx).request("POST", PATH, json=body)
    _show(r, as_json)


@app.command("list")
def list_(
    ctx: typer.Context,
    all_: Annotated[bool, typer.Option("--all", help="Released and expired ones too.")] = False,
    host: Annotated[int | None, typer.Option(help="Only on this host (id).")] = None,
    board: Annotated[int | None, typer.Option(help="Only of this board (id).")] = None,
    owner: Annotated[str | None, typer.Option()] = None,
    limit: int = 50,
    offset: int = 0,
    as_json: JsonFlag = False,
) -> None:
    """List reservations held now (``--all``: history too), newest first."""
    params: dict[str, Any] = {"active": not all_, "limit": limit, "offset": offset}
    params |= {k: v for k, v in (("host_id", host), ("board_id", board), ("owner", owner)) if v is not None}
    page = client_of(ctx).request("GET", PATH, params=params)
    if as_json:
        output.show_json(page)
        return
    rows = [
        {
            "id": r["id"],
            "target": f"host {r['host_id']}" if r["host_id"] is not None else f"board {r['board_id']}",
            "vcpus": r["vcpus"] or None,
            "memory MB": r["memory_mb"] or None,
            "disk GB": r["disk_gb"] or None,
            "owner": r["owner"],
            "purpose": r["purpose"],
            "expires": r["expires_at"],
            "active": r["active"],
        }
        for r in page["items"]
    ]
    columns = ("id", "target", "vcpus", "memory MB", "disk GB", "owner", "purpose", "expires", "active")
    output.show_table(rows, columns, title=f"{page['count']} reservation(s)")


@app.command()
def show(ctx: typer.Context, ident: Ident, as_json: JsonFlag = False) -> None:
    """Show one reservation."""
    _show(client_of(ctx).request("GET", f"{PATH}/{ident}"), as_json)


@app.command()
def extend(
    ctx: typer.Context,
    ident: Ident,
    expires_in: Annotated[int, typer.Option("--expires-in", help="The new expiry, in seconds from now.")],
    as_json: JsonFlag = False,
) -> None:
    """Move a reservation's expiry."""
    r = client_of(ctx).request("POST", f"{PATH}/{ident}/extend", json={"expires_in_s": expires_in})
    _show(r, as_json)


@app.command()
def release(ctx: typer.Context, ident: Ident, as_json: JsonFlag = False) -> None:
    """Release: exactly what it held is free again."""
    _show(client_of(ctx).request("POST", f"{PATH}/{ident}/release"), as_json)
