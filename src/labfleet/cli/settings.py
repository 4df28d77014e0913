"""``settings``: the lab's settings, shown and changed (applied by every process at once)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from labfleet.cli import output, pairs
from labfleet.cli.inventory import JsonFlag, client_of, load_file, show

app = typer.Typer(help="The lab's settings: check intervals, thresholds, retention.", no_args_is_help=True)

PATH = "/settings"
_META = ("version", "updated_at", "updated_by")


def _flat(value: Any, prefix: str = "") -> list[dict[str, Any]]:
    if isinstance(value, dict):
        return [row for key, item in value.items() for row in _flat(item, f"{prefix}{key}.")]
    return [{"setting": prefix.rstrip("."), "value": value}]


@app.command()
def get(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Show the settings, one dotted name per line (``--json``: the document)."""
    found = client_of(ctx).request("GET", PATH)
    if as_json:
        output.show_json(found)
        return
    meta = {k: found.pop(k) for k in _META}
    by = f"by {meta['updated_by']} at {meta['updated_at']}" if meta["updated_by"] else "the defaults"
    output.show_table(_flat(found), ("setting", "value"), title=f"settings version {meta['version']}, {by}")


@app.command("set")
def set_(
    ctx: typer.Context,
    assignments: Annotated[
        list[str] | None,
        typer.Argument(metavar="NAME=VALUE", help="Dotted, e.g. thresholds.host.failure_limit=5."),
    ] = None,
    from_file: Annotated[Path | None, typer.Option(help="JSON object of settings to change.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Change some settings, keeping the others; refused if someone changed them meanwhile."""
    change = pairs.merge(load_file(from_file), pairs.parse(assignments or (), option="NAME=VALUE"))
    if not change:
        raise typer.BadParameter("nothing to change", param_hint="NAME=VALUE")
    client = client_of(ctx)
    now = client.request("GET", PATH)
    version = now["version"]
    document = pairs.merge({k: v for k, v in now.items() if k not in _META}, change)
    show(client.request("PUT", PATH, json=document, headers={"If-Match": f'"{version}"'}), as_json)
