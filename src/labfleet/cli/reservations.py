"""``reservations``: hold a host's capacity or a whole board; list, show, extend, release."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.markup import escape

from labfleet.cli import output, pairs
from labfleet.cli.build_view import show_decision
from labfleet.cli.inventory import ExplainFlag, JsonFlag, client_of, get_unless_json, given

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


class Auto(StrEnum):
    host = "host"
    board = "board"


@app.command()
def create(
    ctx: typer.Context,
    purpose: Annotated[str, typer.Option(help="What it is for (a CI job, a person's debugging).")],
    host: Annotated[int | None, typer.Option(help="Reserve capacity on this host (id).")] = None,
    board: Annotated[int | None, typer.Option(help="Reserve this whole board (id).")] = None,
    auto: Annotated[
        Auto | None, typer.Option(help="Let labfleet choose the best host or board that fits.")
    ] = None,
    arch: Annotated[str | None, typer.Option("--arch", help="With --auto: the architecture.")] = None,
    kvm: Annotated[bool, typer.Option("--kvm", help="With --auto host: KVM required.")] = False,
    board_type: Annotated[
        str | None, typer.Option("--board-type", help="With --auto board: only this type.")
    ] = None,
    peripheral: Annotated[
        list[str] | None, typer.Option(help="With --auto board: a peripheral it must have; repeatable.")
    ] = None,
    label: Annotated[
        list[str] | None, typer.Option(help="With --auto: key=value it must carry; repeatable.")
    ] = None,
    vcpus: Annotated[int, typer.Option(min=0)] = 0,
    memory_mb: Annotated[int, typer.Option("--memory-mb", min=0)] = 0,
    disk_gb: Annotated[float, typer.Option("--disk-gb", min=0)] = 0.0,
    expires_in: Annotated[
        int, typer.Option("--expires-in", help="Seconds until it is released by itself.")
    ] = 3600,
    explain: Annotated[
        bool, typer.Option("--explain", help="With --auto: every candidate, why excluded or how it scored.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Reserve; refused (with what is in the way) when the host lacks room or the board is held.

    With --auto, refused when nothing fits now, with the alternatives and what each lacks.
    """
    body: dict[str, Any] = {"purpose": purpose, "expires_in_s": expires_in}
    if host is not None:
        body |= {"host_id": host, "vcpus": vcpus, "memory_mb": memory_mb, "disk_gb": disk_gb}
    if board is not None:
        body["board_id"] = board
    if auto is not None:
        sizes = {"vcpus": vcpus, "memory_mb": memory_mb, "disk_gb": disk_gb}
        body["target"] = _auto_target(auto, arch, kvm, board_type, peripheral, label, sizes)
    # The decision names what was chosen: asked for whenever the choice is printed.
    ask_decision = explain or (auto is not None and not as_json)
    r = client_of(ctx).request("POST", PATH, json=body, params={"explain": ask_decision})
    if as_json:
        output.show_json(r)
        return
    if r.get("auto"):
        _print_choice(r, explain=explain)
    else:
        _show(r, as_json)


def _auto_target(
    auto: Auto,
    arch: str | None,
    kvm: bool,
    board_type: str | None,
    peripheral: list[str] | None,
    label: list[str] | None,
    sizes: dict[str, float],
) -> dict[str, Any]:
    """What ``--auto`` asks labfleet to find: a host of some size, or a board of some kind."""
    if arch is None:
        raise typer.BadParameter("--auto needs --arch", param_hint="--arch")
    target: dict[str, Any] = {"auto": auto.value, "architecture": arch}
    if label:
        target["labels"] = pairs.parse(label, option="--label", raw=True)
    if auto is Auto.host:
        target["kvm"] = kvm
        target |= {name: value for name, value in sizes.items() if value}
    else:
        if board_type is not None:
            target["board_type"] = board_type
        if peripheral:
            target["peripherals"] = peripheral
    return target


def _print_choice(r: dict[str, Any], *, explain: bool) -> None:
    kind = r["auto"]
    ident = r["host_id"] if kind == "host" else r["board_id"]
    decision = r.get("decision") or {}
    chosen = next(
        (c for c in (decision.get("explanation") or {}).get("candidates", []) if c.get("id") == ident), None
    )
    name = f"{chosen['name']} (#{ident})" if chosen else f"#{ident}"
    output.out.print(
        f"reservation [bold]{r['id']}[/bold]: {kind} [bold]{escape(name)}[/bold] chosen, "
        f"held until {r['expires_at']}"
    )
    for w in r.get("warnings", []):
        output.out.print(f"  [yellow]warning[/yellow]: {escape(str(w.get('message', '')))}")
    if explain:
        show_decision(r)
        for refused in decision.get("refused", []):
            reasons = "; ".join(x.get("message", "") for x in refused.get("lacks", []))
            output.out.print(f"  taken meanwhile: {escape(str(refused.get('name')))}: {escape(reasons)}")


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
    params |= dict(given(("host_id", host), ("board_id", board), ("owner", owner)))
    page = get_unless_json(ctx, PATH, as_json, params=params)
    if page is None:
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
def show(ctx: typer.Context, ident: Ident, explain: ExplainFlag = False, as_json: JsonFlag = False) -> None:
    """Show one reservation."""
    r = get_unless_json(ctx, f"{PATH}/{ident}", as_json, params={"explain": explain})
    if r is None:
        return
    output.show_object({k: v for k, v in r.items() if k != "decision"})
    if explain:
        show_decision(r)


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
