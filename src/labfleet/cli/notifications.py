"""``notifications``: the channels alerts are sent to, and what was sent where.

A channel is given as a JSON file (its secrets with it, so that none is on a command line,
where ``ps`` would show it): ``labfleet notifications add --from-file ops-hook.json``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from labfleet.cli import output
from labfleet.cli.inventory import JsonFlag, client_of, get_unless_json, given, load_file, post, show
from labfleet.schemas.notifications import DeliveryState

app = typer.Typer(help="Notification channels and their deliveries.", no_args_is_help=True)

CHANNELS = "/notification-channels"
DELIVERIES = "/notification-deliveries"
Ident = Annotated[int, typer.Argument(metavar="ID")]
FromFile = Annotated[
    Path, typer.Option(help="JSON: name, target (transport and where; its secret), filters.", exists=True)
]


@app.command("list")
def list_(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """List channels, and whether each is failing."""
    page = get_unless_json(ctx, CHANNELS, as_json)
    if page is None:
        return
    rows = [
        {
            "id": c["id"],
            "name": c["name"],
            "transport": c["transport"],
            "min severity": c["min_severity"],
            "kinds": ", ".join(c["resource_kinds"]) or "all",
            "events": ", ".join(c["events"]) or "all",
            "enabled": c["enabled"],
            "failing": c["last_error"] if c["failing"] else "",
        }
        for c in page["items"]
    ]
    columns = ("id", "name", "transport", "min severity", "kinds", "events", "enabled", "failing")
    output.show_table(rows, columns, title=f"{page['count']} channel(s)")


@app.command()
def add(ctx: typer.Context, from_file: FromFile, as_json: JsonFlag = False) -> None:
    """Add a channel; an SMTP server is tried before it is stored."""
    post(ctx, CHANNELS, load_file(from_file), as_json)


@app.command()
def update(ctx: typer.Context, ident: Ident, from_file: FromFile, as_json: JsonFlag = False) -> None:
    """Change a channel: the file's fields replace its own (a target replaces the whole target)."""
    show(client_of(ctx).request("PATCH", f"{CHANNELS}/{ident}", json=load_file(from_file)), as_json)


@app.command()
def remove(
    ctx: typer.Context,
    ident: Ident,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
) -> None:
    """Remove a channel and its deliveries."""
    if not yes:
        typer.confirm(f"Remove notification channel {ident}?", abort=True)
    client_of(ctx).request("DELETE", f"{CHANNELS}/{ident}")
    output.out.print(f"removed notification channel {ident}")


@app.command()
def deliveries(
    ctx: typer.Context,
    channel_id: Annotated[int | None, typer.Option("--channel-id")] = None,
    state: Annotated[DeliveryState | None, typer.Option(help="Only in this state.")] = None,
    limit: int = 50,
    offset: int = 0,
    as_json: JsonFlag = False,
) -> None:
    """List deliveries, newest first."""
    params: dict[str, Any] = {"limit": limit, "offset": offset}
    params |= dict(given(("channel_id", channel_id), ("state", state)))
    page = get_unless_json(ctx, DELIVERIES, as_json, params=params)
    if page is None:
        return
    rows = [
        {
            "id": d["id"],
            "alert": d["alert_id"],
            "event": d["event"],
            "channel": d["channel"],
            "state": d["state"],
            "tries": d["attempts"],
            "key": d["idempotency_key"],
            "error": d["last_error"] or "",
        }
        for d in page["items"]
    ]
    columns = ("id", "alert", "event", "channel", "state", "tries", "key", "error")
    output.show_table(rows, columns, title=f"{page['count']} deliver(ies)")


@app.command()
def delivery(ctx: typer.Context, ident: Ident, as_json: JsonFlag = False) -> None:
    """Show a delivery and every try."""
    found = get_unless_json(ctx, f"{DELIVERIES}/{ident}", as_json)
    if found is None:
        return
    tries = found.pop("log")
    output.show_object(found)
    output.show_table(
        [
            {
                "try": t["number"],
                "worker": t["worker"],
                "started": t["started_at"],
                "ok": "interrupted" if t["ok"] is None else t["ok"],
                "status": t["status_code"] or "",
                "error": t["error"] or "",
            }
            for t in tries
        ],
        ("try", "worker", "started", "ok", "status", "error"),
        title=f"{len(tries)} tr(ies)",
    )
