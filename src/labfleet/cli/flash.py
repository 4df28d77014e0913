"""``labfleet boards flash ID --artifact N [--follow]``: flash an artifact to a board.

Without ``--follow`` it prints the queued job and returns. With it, a progress bar follows the
job's phase and bytes until it ends; it exits 1 unless the job succeeded (a ``rolled_back``
job left the board on its known-good image: the new one did not take).
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn

from labfleet.cli import output
from labfleet.cli.client import Client, err
from labfleet.cli.inventory import JsonFlag, client_of
from labfleet.schemas.enums import FlashJobStatus

FINAL = (FlashJobStatus.succeeded, FlashJobStatus.failed, FlashJobStatus.rolled_back)
_PHASES = {
    None: "queued",
    "stage": "staging the image",
    "write": "writing",
    "verify": "verifying",
    "boot": "power-cycling, watching the boot",
    "done": "done",
}


def summary(job: dict[str, Any]) -> str:
    status = job["status"]["value"]
    line = f"board {job['board']}: flash job #{job['id']} {status}"
    if status == "succeeded":
        line += f": firmware {job['target_version']}"
    if job.get("error"):
        line += f": {job['error']}"
    return line


def report(job: dict[str, Any], as_json: bool) -> None:
    if as_json:
        output.show_json(job)
    else:
        status = job["status"]["value"]
        colour = {"succeeded": "green", "queued": "blue", "running": "blue"}.get(status, "red")
        output.out.print(f"[{colour}]{escape(summary(job))}[/{colour}]")


def follow(api: Client, job: dict[str, Any], *, poll_s: float = 0.5) -> dict[str, Any]:
    """Poll the job until it ends, showing its phase and bytes; the finished job."""
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as bar:
        task = bar.add_task(f"flash job #{job['id']}: queued", total=None)
        while job["status"]["value"] not in FINAL:
            progress = job["progress"]
            phase = _PHASES.get(progress["phase"], progress["phase"])
            total = progress["bytes_total"] or None
            bar.update(
                task,
                description=f"flash job #{job['id']} (attempt {job['attempt']}): {phase}",
                completed=progress["bytes_done"],
                total=total,
            )
            time.sleep(poll_s)
            job = api.request("GET", f"/flash-jobs/{job['id']}")
    return job


def flash_board(
    ctx: typer.Context,
    ident: Annotated[int, typer.Argument(metavar="ID", help="The board's id.")],
    artifact: Annotated[int, typer.Option("--artifact", help="The artifact's id.")],
    version: Annotated[
        str | None, typer.Option(help="The firmware version it is (default: the artifact's commit).")
    ] = None,
    boot_check: Annotated[
        bool | None,
        typer.Option(
            "--boot-check/--no-boot-check",
            help="Power-cycle and watch the boot afterwards (default: with a console and power control).",
        ),
    ] = None,
    force: Annotated[bool, typer.Option(help="Flash a board whose status is failed.")] = False,
    follow_: Annotated[bool, typer.Option("--follow", help="Show the progress until the job ends.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Flash an artifact to the board: written, verified, booted; on failure, the known-good image is back."""
    api = client_of(ctx)
    body: dict[str, Any] = {"artifact_id": artifact, "force": force}
    if version is not None:
        body["version"] = version
    if boot_check is not None:
        body["boot_check"] = boot_check
    job = api.request("POST", f"/boards/{ident}/flash", json=body)
    if not follow_:
        report(job, as_json)
        return
    job = follow(api, job)
    report(job, as_json)
    if job["status"]["value"] != "succeeded":
        raise typer.Exit(1)
