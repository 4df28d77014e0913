"""``alerts``: what needs a person, and saying that someone is on it or that it is over."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from labfleet.cli import output
from labfleet.cli.inventory import JsonFlag, client_of, get_unless_json, given
from labfleet.schemas.alerts import AlertState as State
from labfleet.schemas.alerts import AlertSubject as Kind
from labfleet.schemas.alerts import Severity

app = typer.Typer(help="Alerts: list them, acknowledge one, resolve one.", no_args_is_help=True)

PATH = "/alerts"
Ident = Annotated[int, typer.Argument(metavar="ID", help="The alert's id.")]
Comment = Annotated[str | None, typer.Option("--comment", "-m", help="What was done, or who is on it.")]


@app.command("list")
def list_(
    ctx: typer.Context,
    state: Annotated[State | None, typer.Option(help="Only in this state.")] = None,
    severity: Annotated[Severity | None, typer.Option(help="Only of this severity.")] = None,
    resource_kind: Annotated[Kind | None, typer.Option("--resource-kind")] = None,
    resource_id: Annotated[int | None, typer.Option("--resource-id")] = None,
    kind: Annotated[str | None, typer.Option(help="Only of this kind, e.g. unreachable.")] = None,
    limit: int = 50,
    offset: int = 0,
    as_json: JsonFlag = False,
) -> None:
    """List alerts, newest first."""
    params: dict[str, Any] = {"limit": limit, "offset": offset}
    params |= dict(
        given(
            ("state", state),
            ("severity", severity),
            ("resource_kind", resource_kind),
            ("resource_id", resource_id),
            ("kind", kind),
        )
    )
    page = get_unless_json(ctx, PATH, as_json, params=params)
    if page is None:
        return
    rows = [
        {
            "id": a["id"],
            "severity": a["severity"],
            "state": a["state"],
            "resource": f"{a['resource_kind']} {a['resource_id']}",
            "kind": a["kind"],
            "seen": a["occurrences"],
            "last seen": a["last_seen_at"],
            "message": a["message"],
        }
        for a in page["items"]
    ]
    columns = ("id", "severity", "state", "resource", "kind", "seen", "last seen", "message")
    output.show_table(rows, columns, title=f"{page['count']} alert(s)")


def _act(ctx: typer.Context, ident: int, verb: str, comment: str | None, as_json: bool) -> None:
    alert = client_of(ctx).request("POST", f"{PATH}/{ident}/{verb}", json={"comment": comment})
    if as_json:
        output.show_json(alert)
    else:
        output.show_object(alert)


@app.command("ack")
def ack(ctx: typer.Context, ident: Ident, comment: Comment = None, as_json: JsonFlag = False) -> None:
    """Acknowledge an open alert: someone is on it."""
    _act(ctx, ident, "acknowledge", comment, as_json)


@app.command()
def resolve(ctx: typer.Context, ident: Ident, comment: Comment = None, as_json: JsonFlag = False) -> None:
    """Resolve an alert by hand; a condition still there raises a new one."""
    _act(ctx, ident, "resolve", comment, as_json)
