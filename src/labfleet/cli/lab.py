"""``lab up | down | status``: the virtual lab of real daemons on this machine."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.table import Table

from labfleet.cli.client import Target, err
from labfleet.cli.output import out, show_json
from labfleet.errors import LabfleetError
from labfleet.lab import up as lab_up
from labfleet.lab.paths import LabPaths
from labfleet.lab.register import register as register_lab
from labfleet.lab.status import LabStatus
from labfleet.lab.status import status as lab_status

app = typer.Typer(
    help="The virtual lab: sshd, libvirtd, QEMU boards, ser2net and pdudaemon on this machine (as root).",
    no_args_is_help=True,
)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _fail(exc: LabfleetError) -> typer.Exit:
    err.print(f"[red]error:[/red] {exc.message}")
    return typer.Exit(1)


def _show(current: LabStatus, as_json: bool) -> None:
    if as_json:
        show_json(current.as_json())
        return
    table = Table(title="virtual lab" + ("" if current.up else " (not all up)"))
    for column in ("part", "state", "pid", "detail"):
        table.add_column(column)
    for part in current.parts:
        if part.kind == "board":
            state = "[green]on[/green]" if part.running else "[yellow]off[/yellow]"
        else:
            state = "[green]running[/green]" if part.running else "[red]stopped[/red]"
        table.add_row(part.name, state, str(part.pid or "-"), part.detail)
    out.print(table)


@app.command()
def up(
    ctx: typer.Context,
    register: Annotated[
        bool, typer.Option("--register", help="Register the lab in labfleet (--url/--token of `labfleet`).")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Start the lab and power its boards on; it may be run again."""
    paths = LabPaths.from_env()
    started = time.monotonic()
    try:
        with err.status("virtual lab: starting") as spinner:

            def report(message: str) -> None:
                err.print(f"  {message}")
                spinner.update(f"virtual lab: {message}")

            current = lab_up.up(paths, report=report)
            err.print(f"[bold]virtual lab up[/bold] in {time.monotonic() - started:.1f} s ({paths.state})")
            if register:
                target: Target = ctx.find_root().obj
                spinner.update(f"virtual lab: registering at {target.url}")
                for item in register_lab(paths, url=target.url, token=target.token):
                    err.print(f"  {item.name}: {'registered' if item.created else 'already registered'}")
    except LabfleetError as exc:
        failure = _fail(exc)
        if lab_status(paths).anything_running:
            err.print("what started keeps running: `labfleet lab status` shows it, `lab down` stops it")
        raise failure from exc
    _show(current, as_json)


@app.command()
def down() -> None:
    """Stop every process of the lab and remove its runtime files (keys and downloads stay)."""
    paths = LabPaths.from_env()
    try:
        with err.status("virtual lab: stopping"):
            stopped = lab_up.down(paths, report=lambda message: err.print(f"  {message}"))
    except LabfleetError as exc:
        raise _fail(exc) from exc
    err.print(f"[bold]virtual lab down[/bold] ({len(stopped)} parts were running)")


@app.command()
def status(as_json: JsonFlag = False) -> None:
    """Each part of the lab: running or not, and each board's power."""
    try:
        current = lab_status(LabPaths.from_env())
    except LabfleetError as exc:
        raise _fail(exc) from exc
    _show(current, as_json)
