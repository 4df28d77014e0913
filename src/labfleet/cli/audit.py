"""``audit``: who changed what, when, before and after (admins)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from labfleet.cli import output
from labfleet.cli.inventory import JsonFlag, client_of, get_unless_json, given

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


@app.command()
def export(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--output", "-o", help="Where to write the JSON lines.")],
    since: Annotated[datetime | None, typer.Option(help="From this time on (ISO 8601).")] = None,
    before: Annotated[datetime | None, typer.Option(help="Before this time (ISO 8601).")] = None,
) -> None:
    """Export the audit log as JSON lines, oldest first (what retention's archive holds)."""
    params = {k: v.isoformat() for k, v in (("since", since), ("before", before)) if v is not None}
    partial = out.with_name(out.name + ".part")
    lines = 0
    with partial.open("wb") as f:
        for chunk in client_of(ctx).stream("/audit-log/export", params=params):
            lines += chunk.count(b"\n")
            f.write(chunk)
    partial.replace(out)
    output.out.print(f"{out}: {lines} entries")
