"""Following a build's log: stored bytes over HTTP, then live over the ``/api/v1/events``
WebSocket from a byte offset, with a status line on the terminal.

The log text goes to stdout as it comes; a dropped or ``lagged`` stream is joined again
from the last offset received, so nothing is lost or repeated (the loop is ``follow_core``'s).
The exit code is 0 only for a build that succeeded.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import typer
from rich.console import Console, RenderableType
from rich.markup import escape
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from labfleet.cli import client, follow_core, output
from labfleet.cli.build_view import ACTIVE, PATH, duration, human_size, parse_time, server_of, status_of
from labfleet.cli.client import Client, Target, err
from labfleet.cli.follow_core import INTERRUPTED as INTERRUPTED
from labfleet.cli.follow_core import Followed, Page, fetch
from labfleet.cli.follow_core import FollowError as FollowError
from labfleet.cli.follow_core import emit as emit

_REFRESH_SECONDS = 10.0


class LogClient(Client):
    """The API client, plus reading a plain-text answer (the log) with its headers."""

    def text(self, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.get(path, **kwargs)
        except httpx.TransportError as exc:
            err.print(f"[red]error:[/red] cannot reach labfleet at {self._http.base_url}: {exc}")
            raise typer.Exit(1) from exc
        if response.is_error:
            client._fail(response)
        return response


# -- following


@dataclass
class Watch:
    """What the status line shows, updated as events come."""

    job_id: int
    status: str
    server: str | None = None
    server_id: int | None = None
    started: datetime | None = None
    queued: datetime | None = None
    finished: datetime | None = None
    size: int = 0
    """Bytes of the log received: the offset to resume from."""
    note: str = ""
    failure_reason: str | None = None
    spinner: Spinner = field(default_factory=lambda: Spinner("dots"))

    @classmethod
    def of(cls, job: dict[str, Any], offset: int) -> Watch:
        watch = cls(job_id=int(job["id"]), status=status_of(job), size=offset)
        watch.update(job)
        return watch

    def update(self, job: dict[str, Any]) -> None:
        self.status = status_of(job)
        self.server = server_of(job)
        self.server_id = job.get("build_server_id")
        self.started = parse_time(job.get("started_at"))
        self.queued = parse_time(job.get("queued_at"))
        self.finished = parse_time(job.get("finished_at"))
        self.failure_reason = job.get("failure_reason")

    def line(self) -> str:
        since = self.started if self.status != "queued" else self.queued
        until = self.finished if self.status not in ACTIVE and self.finished else datetime.now(UTC)
        elapsed = duration((until - since).total_seconds()) if since else "-"
        parts = [
            f"build job {self.job_id}",
            self.status,
            f"on {self.server}" if self.server else "no server yet",
            ("queued " if self.status == "queued" else "") + elapsed,
            f"log {human_size(self.size)}",
        ]
        return " · ".join(parts) + (f" · {self.note}" if self.note else "")

    def __rich__(self) -> RenderableType:
        grid = Table.grid(padding=(0, 1))
        grid.add_row(self.spinner, Text(self.line()))
        return grid


class Sink(follow_core.LogSink):
    """Log text to stdout; the status line live on a terminal, or its changes as lines on stderr."""

    def __init__(self, watch: Watch, stdout: Console, stderr: Console) -> None:
        job = watch.job_id
        again = f"labfleet builds logs {job} --follow"
        super().__init__(
            watch, Followed(f"build job {job}", "the build", again, "bytes shown"), stdout, stderr
        )
        self.watch = watch
        self._said = ""

    def __enter__(self) -> Sink:
        super().__enter__()
        self.changed()
        return self

    def changed(self) -> None:
        """Status or server changed: a terminal shows it live; otherwise say it once on stderr."""
        if self.refreshed():
            return
        w = self.watch
        said = f"build job {w.job_id}: {w.status}" + (f" on {w.server}" if w.server else "")
        if said != self._said:
            self._said = said
            self._stderr.print(said, highlight=False, markup=False)


async def stream(target: Target, watch: Watch, sink: Sink) -> str:
    """Follow the job's log from ``watch.size`` until it ends; its final status.

    Reconnects from the last offset received when the connection drops or the server
    says the stream ``lagged``; gives up after a run of failed connections.
    """
    async with follow_core.api(target) as http:
        follower = _Follower(http, watch, sink)
        poller = asyncio.create_task(follower.keep_fresh())
        try:
            return await follow_core.follow(target, follower)
        finally:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller


class _Follower(follow_core.Follower):
    """A build job's log: plain text with ``X-Log-*`` headers; its status events."""

    sink: Sink

    def __init__(self, http: httpx.AsyncClient, watch: Watch, sink: Sink) -> None:
        super().__init__(f"build-job:{watch.job_id}", http, watch, sink)
        self.watch = watch

    async def read(self, offset: int) -> Page | None:
        response = await fetch(self.http, f"{PATH}/{self.watch.job_id}/logs", offset=offset)
        if response is None:
            return None
        headers = response.headers
        start = int(headers.get("X-Log-Offset", offset))
        return Page(
            start=start,
            data=response.content,
            end=start + len(response.content),
            size=int(headers.get("X-Log-Size", 0)),
            complete=headers.get("X-Log-Complete") == "true",
            status=str(headers.get("X-Job-Status", "unknown")),
        )

    async def ended(self, last: Page) -> str | None:
        return last.status

    async def opened(self) -> None:
        # Status events sent before the server subscribed this stream are not replayed:
        # read the job once connected.
        await self.refresh()
        self.sink.changed()

    async def handle(self, message: dict[str, Any]) -> str | None:
        kind = message.get("type")
        if kind == "log":
            self.take(message)
        elif kind == "status":
            await self.refresh(message)
            self.sink.changed()
        elif kind == "end":
            return str(message.get("status"))
        return None

    def reconnecting(self) -> None:
        self.sink.changed()

    def take(self, message: dict[str, Any]) -> None:
        """A piece of the log: the part past what was received already, by byte offset."""
        watch = self.watch
        start = int(message["offset"])
        data = str(message["data"]).encode()
        end = start + len(data)
        if end <= watch.size:
            return
        if start < watch.size:
            data = data[watch.size - start :]
        self.sink.write(data)
        watch.size = end

    async def keep_fresh(self) -> None:
        """The status line from the job itself now and then, whatever events were missed."""
        while True:
            await asyncio.sleep(_REFRESH_SECONDS)
            await self.refresh()
            self.sink.changed()

    async def refresh(self, event: dict[str, Any] | None = None) -> None:
        """The job afresh (status, its server's name, start time); after a status event, that at least."""
        watch = self.watch
        event = event or {}
        watch.status = str(event.get("status", watch.status))
        watch.failure_reason = event.get("failure_reason") or watch.failure_reason
        response = await fetch(self.http, f"{PATH}/{watch.job_id}")
        if response is not None:
            watch.update(response.json())
            return
        if "build_server_id" in event and event["build_server_id"] != watch.server_id:
            watch.server_id = event.get("build_server_id")
            watch.server = f"#{watch.server_id}" if watch.server_id is not None else None


def follow_and_exit(ctx: typer.Context, api: Client, job: dict[str, Any], offset: int) -> None:
    """Follow the log to the end, then exit: 0 if the build succeeded, 1 with the reason if not."""
    target: Target = ctx.find_root().obj
    watch = Watch.of(job, offset)
    sink = Sink(watch, output.out, err)
    with follow_core.stopping(sink), sink:
        status = asyncio.run(stream(target, watch, sink))
    final = api.request("GET", f"{PATH}/{watch.job_id}")
    took = ""
    started, finished = parse_time(final.get("started_at")), parse_time(final.get("finished_at"))
    if started and finished:
        took = f" in {duration((finished - started).total_seconds())}"
    where = escape(f" on {server_of(final)}") if server_of(final) else ""
    if status == "succeeded":
        err.print(f"[green]build job {watch.job_id} succeeded[/green]{took}{where}", highlight=False)
        raise typer.Exit(0)
    reason = final.get("failure_reason") or watch.failure_reason or "no reason recorded"
    err.print(
        f"[red]build job {watch.job_id} {escape(status)}[/red]{took}{where}: {escape(reason)}",
        highlight=False,
    )
    raise typer.Exit(1)
