"""Following a build's log: stored bytes over HTTP, then live over the ``/api/v1/events``
WebSocket from a byte offset, with a status line on the terminal.

The log text goes to stdout as it comes; a dropped or ``lagged`` stream is joined again
from the last offset received, so nothing is lost or repeated. The exit code is 0 only for
a build that succeeded.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import json
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import httpx
import typer
from rich.console import Console, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from labfleet.cli import client, output
from labfleet.cli.build_view import ACTIVE, PATH, duration, human_size, parse_time, server_of, status_of
from labfleet.cli.client import Client, Target, err

_MAX_MESSAGE = 64 * 1024 * 1024  # a log event carries up to 1 MiB of text, JSON-escaped
_RECONNECT_TRIES = 30
_RECONNECT_MAX_WAIT = 5.0
_REFRESH_SECONDS = 10.0
_HEALTHY_SECONDS = 30.0
INTERRUPTED = 130  # as a shell reports a process stopped by Ctrl-C


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


def emit(data: bytes) -> None:
    """Log bytes to stdout as they are, whatever its encoding."""
    stdout = sys.stdout
    stdout.flush()
    buffer = getattr(stdout, "buffer", None)
    if buffer is not None:
        buffer.write(data)
        buffer.flush()
    else:
        stdout.write(data.decode("utf-8", "replace"))
        stdout.flush()


# -- following


class FollowError(Exception):
    """The log cannot be followed: refused, or the stream was lost for good."""


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


class Sink:
    """Log text to stdout; the status line live on a terminal, or its changes as lines on stderr."""

    def __init__(self, watch: Watch, stdout: Console, stderr: Console) -> None:
        self.watch = watch
        self._partial = ""
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._stdout = stdout
        self._stderr = stderr
        self._live: Live | None = None
        self._said = ""
        display = stdout if stdout.is_terminal else stderr if stderr.is_terminal else None
        if display is not None:
            self._live = Live(
                watch,
                console=display,
                refresh_per_second=4,
                transient=True,
                redirect_stdout=False,
                redirect_stderr=False,
            )

    def __enter__(self) -> Sink:
        if self._live is not None:
            self._live.start()
        else:
            self._stderr.print(
                f"following build job {self.watch.job_id} (Ctrl-C stops following; the build goes on)",
                highlight=False,
            )
        self.changed()
        return self

    def __exit__(self, *exc: object) -> None:
        self.flush()
        if self._live is not None:
            self._live.stop()

    def write(self, data: bytes) -> None:
        """Bytes of the log, in order."""
        if self._live is not None and self._live.console is self._stdout:
            # The status line shares the screen with the log: print whole lines above it.
            lines = (self._partial + self._decoder.decode(data)).split("\n")
            self._partial = lines.pop()
            for line in lines:
                self._stdout.print(Text(line), soft_wrap=True)
        else:
            emit(data)

    def flush(self) -> None:
        self._partial += self._decoder.decode(b"", final=True)
        if self._partial:
            self._stdout.print(Text(self._partial), soft_wrap=True)
            self._partial = ""

    def changed(self) -> None:
        """Status or server changed: a terminal shows it live; otherwise say it once on stderr."""
        if self._live is not None:
            self._live.refresh()
            return
        w = self.watch
        said = f"build job {w.job_id}: {w.status}" + (f" on {w.server}" if w.server else "")
        if said != self._said:
            self._said = said
            self._stderr.print(said, highlight=False, markup=False)


def events_url(base: str, job_id: int, offset: int) -> str:
    parts = urlsplit(base)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    query = urlencode({"topic": f"build-job:{job_id}", "log_offset": offset})
    return urlunsplit((scheme, parts.netloc, f"{parts.path.rstrip('/')}/api/v1/events", query, ""))


async def stream(target: Target, watch: Watch, sink: Sink) -> str:
    """Follow the job's log from ``watch.size`` until it ends; its final status.

    Reconnects from the last offset received when the connection drops or the server
    says the stream ``lagged``; gives up after a run of failed connections.
    """
    headers = {"Authorization": f"Bearer {target.token}"} if target.token else {}
    async with httpx.AsyncClient(base_url=f"{target.url}/api/v1", headers=headers, timeout=30) as http:
        poller = asyncio.create_task(_keep_fresh(http, watch, sink))
        try:
            return await _stream(target, headers, http, watch, sink)
        finally:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller


async def _stream(
    target: Target, headers: dict[str, str], http: httpx.AsyncClient, watch: Watch, sink: Sink
) -> str:
    failures = 0
    loop = asyncio.get_running_loop()
    while True:
        problem: str | None = None
        opened: float | None = None
        received = False
        final = await _catch_up(http, watch, sink)
        if final:
            return final
        try:
            async with connect(
                events_url(target.url, watch.job_id, watch.size),
                additional_headers=headers,
                max_size=_MAX_MESSAGE,
                open_timeout=15,
                close_timeout=2,
            ) as ws:
                opened = loop.time()
                watch.note = ""
                # Status events sent before the server subscribed this stream are not
                # replayed: read the job once connected.
                await _refresh(http, watch)
                sink.changed()
                async for raw in ws:
                    received = True
                    message = json.loads(raw)
                    kind = message.get("type")
                    if kind == "log":
                        _take(watch, sink, message)
                    elif kind == "status":
                        await _refresh(http, watch, message)
                        sink.changed()
                    elif kind == "end":
                        return str(message.get("status"))
                    elif kind == "error":
                        raise FollowError(str(message.get("detail")))
                    elif kind == "lagged":
                        problem = "the stream lagged"
                        break
            problem = problem or "the server closed the stream"
        except InvalidStatus as exc:
            code = exc.response.status_code
            if code in (401, 403):
                raise FollowError(
                    f"the server refused the event stream ({code}): an API token with a role is required"
                ) from exc
            problem = f"the server answered {code}"
        except (OSError, TimeoutError, ConnectionClosed, InvalidHandshake) as exc:
            problem = str(exc) or type(exc).__name__
        if received or (opened is not None and loop.time() - opened > _HEALTHY_SECONDS):
            failures = 0  # the stream worked for a while: this is a new run of failures
        failures += 1
        if failures > _RECONNECT_TRIES:
            raise FollowError(f"lost the event stream: {problem}")
        watch.note = f"reconnecting: {problem}"
        sink.changed()
        await asyncio.sleep(min(0.25 * 2 ** (failures - 1), _RECONNECT_MAX_WAIT))


def _take(watch: Watch, sink: Sink, message: dict[str, Any]) -> None:
    """A piece of the log: the part past what was received already, by byte offset."""
    start = int(message["offset"])
    data = str(message["data"]).encode()
    end = start + len(data)
    if end <= watch.size:
        return
    if start < watch.size:
        data = data[watch.size - start :]
    sink.write(data)
    watch.size = end


async def _catch_up(http: httpx.AsyncClient, watch: Watch, sink: Sink) -> str | None:
    """The stored log past ``watch.size`` over HTTP, byte for byte; the final status once it is all there.

    The event stream then only carries what is new. (Its log events are text: a stored piece
    it replays may be cut inside a UTF-8 character, which HTTP's bytes never are.) None when
    the build may write more, or HTTP failed: the event stream replays what is missing.
    """
    while True:
        try:
            response = await http.get(f"{PATH}/{watch.job_id}/logs", params={"offset": watch.size})
        except httpx.HTTPError:
            return None
        if not response.is_success:
            return None
        headers = response.headers
        if response.content:
            sink.write(response.content)
            watch.size = int(headers.get("X-Log-Offset", watch.size)) + len(response.content)
        if headers.get("X-Log-Complete") == "true":
            return str(headers.get("X-Job-Status", "unknown"))
        if not response.content or watch.size >= int(headers.get("X-Log-Size", 0)):
            return None


async def _keep_fresh(http: httpx.AsyncClient, watch: Watch, sink: Sink) -> None:
    """The status line from the job itself now and then, whatever events were missed."""
    while True:
        await asyncio.sleep(_REFRESH_SECONDS)
        await _refresh(http, watch)
        sink.changed()


async def _refresh(http: httpx.AsyncClient, watch: Watch, event: dict[str, Any] | None = None) -> None:
    """The job afresh (status, its server's name, start time); after a status event, that at least."""
    event = event or {}
    watch.status = str(event.get("status", watch.status))
    watch.failure_reason = event.get("failure_reason") or watch.failure_reason
    try:
        response = await http.get(f"{PATH}/{watch.job_id}")
        if response.is_success:
            watch.update(response.json())
            return
    except httpx.HTTPError:
        pass
    if "build_server_id" in event and event["build_server_id"] != watch.server_id:
        watch.server_id = event.get("build_server_id")
        watch.server = f"#{watch.server_id}" if watch.server_id is not None else None


def follow_and_exit(ctx: typer.Context, api: Client, job: dict[str, Any], offset: int) -> None:
    """Follow the log to the end, then exit: 0 if the build succeeded, 1 with the reason if not."""
    target: Target = ctx.find_root().obj
    watch = Watch.of(job, offset)
    try:
        with Sink(watch, output.out, err) as sink:
            status = asyncio.run(stream(target, watch, sink))
    except KeyboardInterrupt:
        err.print(
            f"stopped following build job {watch.job_id}; the build goes on. Follow it again with:\n"
            f"  labfleet builds logs {watch.job_id} --follow\n"
            f"(add --offset {watch.size} to skip the {watch.size} bytes shown)",
            highlight=False,
        )
        raise typer.Exit(INTERRUPTED) from None
    except FollowError as exc:
        err.print(f"[red]error:[/red] build job {watch.job_id}: {escape(str(exc))}")
        err.print(f"follow it again with: labfleet builds logs {watch.job_id} --follow --offset {watch.size}")
        raise typer.Exit(1) from exc
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
