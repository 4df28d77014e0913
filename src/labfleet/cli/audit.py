"""``audit``: who changed what, when, before and after (admins)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from labfleet.cli import output
from labfleet.cli.inventory import JsonFlag, get_unless_json, given

app = typer.Typer(help="The audit log: every change, newest first.", no_args_is_help=True)


@app.command("list")
def list_(
    ctx: typer.Context,
    object_type: Annotated[
        str | None, typer.Option("--object-type", help="e.g. board, settings, token.")
    ] = None,
    object_id: Annotated[int | None, typer.Option("--object-id")] = None,
    limit: int = 50,
    offset: int = 0,
    as_json: JsonFlag = False,
) -> None:
    """List changes, newest first; ``--json`` for the before and after of each."""
    params: dict[str, Any] = {"limit": limit, "offset": offset}
    params |= dict(given(("object_type", object_type), ("object_id", object_id)))
    page = get_unless_json(ctx, "/audit-log", as_json, params=params)
    if page is None:
        return
    rows = [
        {
            "id": e["id"],
            "at": e["at"],
            "actor": e["actor"],
            "action": e["action"],
            "object": f"{e['object_type']} {e['object_id'] if e['object_id'] is not None else ''}".strip(),
            "what": e["object_display"],
        }
        for e in page["items"]
    ]
    output.show_table(
        rows, ("id", "at", "actor", "action", "object", "what"), title=f"{page['count']} change(s)"
    )
