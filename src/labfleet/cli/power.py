"""``labfleet boards power on|off|cycle|state|history ID``: a board's power, and the record of every action.

Each action prints its recorded result and exits 1 unless it succeeded. ``cycle`` shows
its progress (attempt, step) while the server cycles the board and watches it boot.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Annotated, Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import httpx
import typer
from rich.markup import escape
from rich.status import Status
from websockets.asyncio.client import connect

from labfleet.cli import client, output
from labfleet.cli.client import Target, err
from labfleet.cli.inventory import JsonFlag, client_of

app = typer.Typer(
    help="A board's power: on, off, cycle (watching it boot), state, and the history of actions.",
    no_args_is_help=True,
)

Ident = Annotated[int, typer.Argument(metavar="ID", help="The board's id.")]
_STEPS = {
    "open-console": "opening the console",
    "off": "switching off",
    "wait": "off, waiting",
    "on": "switching on",
    "watch": "watching the console for the boot",
    "booted": "booted",
    "not-booted": "no boot seen",
}
HISTORY_COLUMNS = (
    "id",
    "action",
    "status",
    "requested_by",
    "started_at",
    "duration_s",
    "power_state",
    "boot_seen",
    "attempts",
    "error",
)


def summary(action: dict[str, Any]) -> str:
    """One line for people: what was done to which board, and how it ended."""
    status = action["status"]["value"]
    took = f" in {action['duration_s']:g} s" if action.get("duration_s") is not None else ""
    line = f"board {action['board']}: power {action['action']} #{action['id']} {status}{took}"
    if action["action"] == "state" and status == "succeeded":
        line += f": {action['power_state']}"
        last = action.get("detail", {}).get("last_switched")
        if action["power_state"] == "unknown" and last:
            line += f" (the controller cannot tell; last switched {last['power_state']} at {last['at']})"
    elif action["action"] == "cycle" and action.get("boot_seen"):
        line += f": booted on attempt {action['attempts']} of {action['max_attempts']}"
    elif action["action"] in ("on", "off") and status == "succeeded":
        line += f": now {action['power_state']}"
    if action.get("error"):
        line += f": {action['error']}"
    return line


def report(action: dict[str, Any], as_json: bool) -> None:
    """Print the recorded action; exit 1 unless it succeeded."""
    if as_json:
        output.show_json(action)
    else:
        colour = "green" if action["status"]["value"] == "succeeded" else "red"
        output.out.print(f"[{colour}]{escape(summary(action))}[/{colour}]")
        if not as_json and action["action"] == "cycle":
            for attempt in action.get("detail", {}).get("attempts", []):
                seen = attempt.get("seen") or attempt.get("error") or ""
                output.out.print(
                    f"  attempt {attempt['attempt']}: "
                    f"{'booted' if attempt.get('boot_seen') else 'no boot'} "
                    f"after {attempt.get('seconds', 0):g} s {escape(str(seen))}",
                    highlight=False,
                )
    if action["status"]["value"] != "succeeded":
        raise typer.Exit(1)


def _switch(ctx: typer.Context, ident: int, state: str, as_json: bool) -> None:
    report(client_of(ctx).request("PUT", f"/boards/{ident}/power", json={"state": state}), as_json)


@app.command()
def on(ctx: typer.Context, ident: Ident, as_json: JsonFlag = False) -> None:
    """Switch the board on."""
    _switch(ctx, ident, "on", as_json)


@app.command()
def off(ctx: typer.Context, ident: Ident, as_json: JsonFlag = False) -> None:
    """Switch the board off."""
    _switch(ctx, ident, "off", as_json)


@app.command()
def state(ctx: typer.Context, ident: Ident, as_json: JsonFlag = False) -> None:
    """Ask the board's power controller whether it is on (recorded like every action)."""
    report(client_of(ctx).request("GET", f"/boards/{ident}/power"), as_json)


@app.command()
def cycle(
    ctx: typer.Context,
    ident: Ident,
    boot_timeout: Annotated[
        float | None, typer.Option(help="Seconds to watch the console for the boot.")
    ] = None,
    retries: Annotated[
        int | None, typer.Option(help="Power cycles tried in all before the board is marked failed.")
    ] = None,
    off_time: Annotated[float | None, typer.Option("--off", help="Seconds the board stays off.")] = None,
    pattern: Annotated[
        str | None, typer.Option(help="Regular expression the console prints once booted.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Power-cycle the board: off, wait, on, watch its console for the boot; retried, then failed."""
    body = {
        k: v
        for k, v in {
            "boot_timeout_s": boot_timeout,
            "retries": retries,
            "off_s": off_time,
            "boot_pattern": pattern,
        }.items()
        if v is not None
    }
    target: Target = ctx.find_root().obj
    with err.status(f"board {ident}: power cycle requested") as status:
        response = asyncio.run(_cycle(target, ident, body, status))
    if response.is_error:
        client._fail(response)
    report(response.json(), as_json)


@app.command()
def history(
    ctx: typer.Context,
    ident: Ident,
    action: Annotated[
        list[str] | None, typer.Option(help="Only these actions (on, off, cycle, state); repeat.")
    ] = None,
    status: Annotated[
        list[str] | None, typer.Option(help="Only these results (running, succeeded, failed); repeat.")
    ] = None,
    limit: int = 50,
    offset: int = 0,
    as_json: JsonFlag = False,
) -> None:
    """The board's power actions, newest first: who, when, how each ended."""
    params: list[tuple[str, str | int]] = [("limit", limit), ("offset", offset)]
    params += [("action", a) for a in action or ()]
    params += [("status", s) for s in status or ()]
    page = client_of(ctx).request("GET", f"/boards/{ident}/power-actions", params=params)
    if as_json:
        output.show_json(page)
        return
    output.show_table(
        page["items"], HISTORY_COLUMNS, title=f"{page['count']} power action(s) of board {ident}"
    )


# -- cycle, with its progress from the events WebSocket


def events_url(base: str, board_id: int) -> str:
    parts = urlsplit(base)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    query = urlencode({"topic": f"board:{board_id}"})
    return urlunsplit((scheme, parts.netloc, f"{parts.path.rstrip('/')}/api/v1/events", query, ""))


async def _cycle(target: Target, board_id: int, body: dict[str, Any], status: Status) -> httpx.Response:
    headers = {"Authorization": f"Bearer {target.token}"} if target.token else {}
    listening = asyncio.Event()
    listener = asyncio.create_task(_follow(target, board_id, headers, status, listening))
    try:
        # Progress is a courtesy: wait a moment for it, never for long.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(listening.wait(), 3)
        # The server answers once the cycle has ended (minutes, bounded by the action's deadline).
        timeout = httpx.Timeout(30.0, read=None)
        async with httpx.AsyncClient(
            base_url=f"{target.url}/api/v1", headers=headers, timeout=timeout
        ) as http:
            try:
                return await http.post(f"/boards/{board_id}/power-cycle", json=body)
            except httpx.TransportError as exc:
                err.print(f"[red]error:[/red] cannot reach labfleet at {target.url}: {exc}")
                raise typer.Exit(1) from exc
    finally:
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await listener


async def _follow(
    target: Target, board_id: int, headers: dict[str, str], status: Status, listening: asyncio.Event
) -> None:
    try:
        async with connect(
            events_url(target.url, board_id), additional_headers=headers, open_timeout=5, close_timeout=1
        ) as ws:
            listening.set()
            async for raw in ws:
                event = json.loads(raw)
                if event.get("type") == "power-progress":
                    step = _STEPS.get(str(event.get("step")), str(event.get("step")))
                    attempt = event.get("attempt") or 0
                    where = f"attempt {attempt}: " if attempt else ""
                    status.update(f"board {board_id}: power cycle #{event.get('action')}: {where}{step}")
    except Exception:  # no progress then; the result still comes with the answer
        listening.set()
