"""Following a pipeline: its log (stored bytes over HTTP, then live over the ``/api/v1/events``
WebSocket from a byte offset) and its progress through build, deploy, boot and test.

The log goes to stdout as it comes (unless ``quiet``); the progress is a live display on a
terminal, or plain lines on stderr otherwise (CI, pipes). A dropped or ``lagged`` stream is
joined again from the last offset received, so nothing is lost or repeated (the loop is
``follow_core``'s; here the log endpoint answers JSON, and events carry the whole state). At the
end the report is printed; the exit code is 0 only for a pipeline that succeeded, 130 on Ctrl-C.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import typer
from rich.console import Console

from labfleet.cli import follow_core, output
from labfleet.cli.build_view import status_of
from labfleet.cli.client import Client, Target, err
from labfleet.cli.follow_core import Followed, Page, Rejoin, fetch
from labfleet.cli.pipeline_progress import Progress
from labfleet.cli.pipeline_report import report
from labfleet.cli.pipeline_view import FINAL, PATH, exit_code


class Sink(follow_core.LogSink):
    """Log text to stdout; progress live on a terminal, or as lines on stderr."""

    def __init__(self, progress: Progress, stdout: Console, stderr: Console, *, quiet: bool = False) -> None:
        ident = progress.pipeline_id
        super().__init__(
            progress,
            Followed(f"pipeline {ident}", "the pipeline", f"labfleet pipelines follow {ident}"),
            stdout,
            stderr,
        )
        self.progress = progress
        self.quiet = quiet

    def write(self, data: bytes) -> None:
        if not self.quiet and data:
            super().write(data)

    def say(self, lines: list[str]) -> None:
        """Progress: a terminal shows it live; otherwise each change is a line on stderr."""
        if self.refreshed():
            return
        for line in lines:
            self._stderr.print(line, highlight=False, markup=False, soft_wrap=True)


async def stream(target: Target, progress: Progress, sink: Sink) -> str:
    """Follow the pipeline from ``progress.size`` until it ends; its final status.

    Reconnects from the last offset received when the connection drops, the server says
    the stream ``lagged`` or skipped part of the log; gives up after a run of failed connections.
    """
    async with follow_core.api(target) as http:
        return await follow_core.follow(target, _Follower(http, progress, sink))


class _Follower(follow_core.Follower):
    """A pipeline's log: JSON pages (``PipelineLogOut``); events that ``Progress`` applies."""

    sink: Sink

    def __init__(self, http: httpx.AsyncClient, progress: Progress, sink: Sink) -> None:
        super().__init__(f"pipeline:{progress.pipeline_id}", http, progress, sink)
        self.progress = progress

    async def read(self, offset: int) -> Page | None:
        response = await fetch(self.http, f"{PATH}/{self.progress.pipeline_id}/logs", offset=offset)
        if response is None:
            return None
        page = response.json()
        start = int(page.get("offset", offset))
        return Page(
            start=start,
            data=str(page.get("data", "")).encode(),
            end=int(page.get("next_offset", start)),
            size=int(page.get("size", 0)),
            complete=bool(page.get("complete")),
        )

    async def ended(self, last: Page) -> str | None:
        await self.refresh()
        return self.progress.status if self.progress.status in FINAL else None

    async def opened(self) -> None:
        self.sink.say([])

    async def handle(self, message: dict[str, Any]) -> str | None:
        applied = self.progress.apply(message)
        self.sink.write(applied.data)
        self.sink.say(applied.lines)
        if applied.end is not None:
            if applied.end_size is not None and self.progress.size < applied.end_size:
                await follow_core.catch_up(self)  # the rest, stored by now
            return applied.end
        if applied.reconnect is not None:
            raise Rejoin(applied.reconnect)
        return None

    def reconnecting(self) -> None:
        self.sink.say([f"pipeline {self.progress.pipeline_id}: {self.progress.note}"])

    async def refresh(self) -> None:
        """The pipeline afresh, as the API shows it."""
        response = await fetch(self.http, f"{PATH}/{self.progress.pipeline_id}")
        if response is not None:
            self.sink.say(self.progress.update(response.json()))


def follow_and_exit(
    ctx: typer.Context, api: Client, pipeline: dict[str, Any], offset: int, *, quiet: bool = False
) -> None:
    """Follow the pipeline to its end, print the report, then exit: 0 if it succeeded, 1 if not."""
    target: Target = ctx.find_root().obj
    progress = Progress(pipeline_id=int(pipeline["id"]), size=offset)
    sink = Sink(progress, output.out, err, quiet=quiet)
    with follow_core.stopping(sink), sink:
        sink.say(progress.update(pipeline))
        status = asyncio.run(stream(target, progress, sink))
        final = api.request("GET", f"{PATH}/{progress.pipeline_id}")
        sink.say(progress.update(final))
    if status_of(final) in FINAL:
        status = status_of(final)
    print_report(final)
    raise typer.Exit(exit_code(status))


def print_report(pipeline: dict[str, Any]) -> None:
    for line in report(pipeline):
        output.out.print(line, soft_wrap=True, highlight=False)
