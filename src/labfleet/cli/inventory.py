"""``list``, ``show``, ``update`` and ``remove`` for every inventory collection, built once."""

from __future__ import annotations

import json
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from labfleet.cli import output, pairs
from labfleet.cli.client import Client, Target

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
ExplainFlag = Annotated[
    bool, typer.Option("--explain", help="How an auto target was chosen: candidates, scores.")
]
V = TypeVar("V")


def client_of(ctx: typer.Context) -> Client:
    target: Target = ctx.find_root().obj
    return Client(target)


def get_unless_json(ctx: typer.Context, path: str, as_json: bool, **kwargs: Any) -> Any:
    """GET ``path``: with ``--json`` the answer is printed as it came and None returned, else returned."""
    answer = client_of(ctx).request("GET", path, **kwargs)
    if as_json:
        output.show_json(answer)
        return None
    return answer


def given(*filters: tuple[str, V | None]) -> list[tuple[str, V]]:
    """The query pairs of the filters that were given, in their order."""
    return [(name, value) for name, value in filters if value is not None]


def load_file(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise typer.BadParameter(f"{path}: {exc}", param_hint="--from-file") from exc
    if not isinstance(data, dict):
        raise typer.BadParameter(f"{path}: expected a JSON object", param_hint="--from-file")
    return data


def show(item: dict[str, Any], as_json: bool) -> None:
    if as_json:
        output.show_json(item)
    else:
        output.show_object(item)


class Lifecycle(StrEnum):
    maintenance = "maintenance"
    online = "online"
    decommissioned = "decommissioned"


def collection_app(*, path: str, noun: str, columns: Sequence[str]) -> typer.Typer:
    app = typer.Typer(help=f"Manage {noun}s.", no_args_is_help=True)

    @app.command("list")
    def list_(
        ctx: typer.Context,
        status: Annotated[list[str] | None, typer.Option(help="Only these statuses.")] = None,
        label: Annotated[list[str] | None, typer.Option(help="key=value or key; all must match.")] = None,
        filter_: Annotated[
            list[str] | None, typer.Option("--filter", help="field=value, e.g. architecture=arm64.")
        ] = None,
        sort: Annotated[str | None, typer.Option(help="Field to sort by; '-' prefix for descending.")] = None,
        limit: int = 50,
        offset: int = 0,
        as_json: JsonFlag = False,
    ) -> None:
        params = _list_params(status, label, filter_, sort, limit=limit, offset=offset)
        page = client_of(ctx).request("GET", path, params=params)
        if as_json:
            output.show_json(page)
            return
        output.show_table(page["items"], columns, title=f"{page['count']} {noun}(s)")

    @app.command("show")
    def show_(
        ctx: typer.Context, ident: Annotated[int, typer.Argument(metavar="ID")], as_json: JsonFlag = False
    ) -> None:
        show(client_of(ctx).request("GET", f"{path}/{ident}"), as_json)

    @app.command()
    def update(
        ctx: typer.Context,
        ident: Annotated[int, typer.Argument(metavar="ID")],
        set_: Annotated[
            list[str] | None, typer.Option("--set", help="field=value; dotted for nested: ssh.port=2222.")
        ] = None,
        label: Annotated[list[str] | None, typer.Option(help="key=value; replaces all labels.")] = None,
        from_file: Annotated[Path | None, typer.Option(help="JSON object of fields to change.")] = None,
        as_json: JsonFlag = False,
    ) -> None:
        body = _update_body(from_file, set_, label)
        show(client_of(ctx).request("PATCH", f"{path}/{ident}", json=body), as_json)

    @app.command()
    def remove(
        ctx: typer.Context,
        ident: Annotated[int, typer.Argument(metavar="ID")],
        yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
    ) -> None:
        if not yes:
            typer.confirm(f"Remove {noun} {ident}?", abort=True)
        client_of(ctx).request("DELETE", f"{path}/{ident}")
        output.out.print(f"removed {noun} {ident}")

    # Help texts name the collection; Typer reads them when the CLI is built.
    list_.__doc__ = f"List {noun}s."
    show_.__doc__ = f"Show one {noun}."
    update.__doc__ = f"Change a {noun}'s settings or credentials."
    remove.__doc__ = f"Remove a {noun} from the inventory."
    return _with_status_command(app, path, noun)


def _with_status_command(app: typer.Typer, path: str, noun: str) -> typer.Typer:
    @app.command()
    def status(
        ctx: typer.Context,
        ident: Annotated[int, typer.Argument(metavar="ID")],
        to: Annotated[
            Lifecycle, typer.Argument(metavar="STATUS", help="maintenance, online or decommissioned.")
        ],
        as_json: JsonFlag = False,
    ) -> None:
        show(client_of(ctx).request("PUT", f"{path}/{ident}/status", json={"status": to.value}), as_json)

    status.__doc__ = (
        f"Put a {noun} in maintenance (what runs goes on, nothing new starts), back online "
        "(after a passing health check), or decommission it."
    )
    return app


def _list_params(
    status: list[str] | None,
    label: list[str] | None,
    filter_: list[str] | None,
    sort: str | None,
    *,
    limit: int,
    offset: int,
) -> list[tuple[str, str | int]]:
    """The query of a list: paging, then each status, label and field filter, then the sort."""
    params: list[tuple[str, str | int]] = [("limit", limit), ("offset", offset)]
    params += [("status", s) for s in status or ()]
    params += [("label", lbl) for lbl in label or ()]
    params += list(pairs.parse(filter_ or (), option="--filter", raw=True).items())
    if sort:
        params.append(("sort", sort))
    return params


def _update_body(from_file: Path | None, set_: list[str] | None, label: list[str] | None) -> dict[str, Any]:
    """The fields to change: the file's, then each ``--set`` over them; ``--label`` replaces all labels."""
    body = pairs.merge(load_file(from_file), pairs.parse(set_ or (), option="--set"))
    if label is not None:
        body["labels"] = pairs.parse(label, option="--label", raw=True)
    if not body:
        raise typer.BadParameter("nothing to change", param_hint="--set")
    return body


def post(ctx: typer.Context, path: str, body: dict[str, Any], as_json: bool) -> None:
    show(client_of(ctx).request("POST", path, json=body), as_json)
