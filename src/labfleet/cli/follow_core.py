"""Following a log live, the part every follower shares: the stored log over HTTP, then the
``/api/v1/events`` WebSocket from a byte offset, joined again from the last offset received
when the connection drops, the server says the stream ``lagged`` or a follower finds a gap.

A follower (``build_follow``, ``pipeline_follow``) gives the topic, how a page of its stored
log is read and what its other events mean; the log bytes go to a ``LogSink``. Ctrl-C and a
stream lost for good end the command (``stopping``), saying how to follow again.
"""

from __future__ import annotations

import asyncio
import codecs
import json
import sys
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol, Self
from urllib.parse import urlencode, urlsplit, urlunsplit

import httpx
import typer
from rich.console import Console, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.text import Text
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from labfleet.cli.client import Target, err

_MAX_MESSAGE = 64 * 1024 * 1024  # a log event carries up to 1 MiB of text, JSON-escaped
_RECONNECT_TRIES = 30
_RECONNECT_MAX_WAIT = 5.0
_HEALTHY_SECONDS = 30.0
INTERRUPTED = 130  # as a shell reports a process stopped by Ctrl-C


class FollowError(Exception):
    """The log cannot be followed: refused, or the stream was lost for good."""


class Rejoin(Exception):
    """The stream must be joined again from the last offset received; the message says why."""


class Position(Protocol):
    """What a follower knows and shows live: the log's ``size`` received (the offset to resume
    from) and a ``note`` (reconnecting, and why)."""

    size: int
    note: str

    def __rich__(self) -> RenderableType: ...


@dataclass(frozen=True)
class Followed:
    """What is followed, as the messages name it."""

    what: str
    """``build job 7``"""
    goes_on: str
    """``the build``: what goes on when the follower stops."""
    again: str
    """The command that follows it again."""
    shown: str = "bytes of log shown"


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


class LogSink:
    """Log bytes to stdout as they come, with ``state`` live on a terminal (stdout's, else
    stderr's); without one, a subclass says what changes as lines on stderr."""

    def __init__(self, state: Position, followed: Followed, stdout: Console, stderr: Console) -> None:
        self.state = state
        self.followed = followed
        self._partial = ""
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._stdout = stdout
        self._stderr = stderr
        self._live: Live | None = None
        display = stdout if stdout.is_terminal else stderr if stderr.is_terminal else None
        if display is not None:
            self._live = Live(
                state,
                console=display,
                refresh_per_second=4,
                transient=True,
                redirect_stdout=False,
                redirect_stderr=False,
            )

    def __enter__(self) -> Self:
        if self._live is not None:
            self._live.start()
        else:
            self._stderr.print(
                f"following {self.followed.what} (Ctrl-C stops following; {self.followed.goes_on} goes on)",
                highlight=False,
            )
        return self

    def __exit__(self, *exc: object) -> None:
        self.flush()
        if self._live is not None:
            self._live.stop()

    def write(self, data: bytes) -> None:
        """Bytes of the log, in order."""
        if self._live is not None and self._live.console is self._stdout:
            # The live display shares the screen with the log: print whole lines above it.
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

    def refreshed(self) -> bool:
        """The live display drawn afresh; False when there is none (say the change as a line)."""
        if self._live is None:
            return False
        self._live.refresh()
        return True


@contextmanager
def stopping(sink: LogSink) -> Iterator[None]:
    """Ctrl-C (exit 130) or a stream lost for good (exit 1) ends the command, saying how to
    follow again from the offset received."""
    followed = sink.followed
    try:
        yield
    except KeyboardInterrupt:
        size = sink.state.size
        err.print(
            f"stopped following {followed.what}; {followed.goes_on} goes on. Follow it again with:\n"
            f"  {followed.again}\n"
            f"(add --offset {size} to skip the {size} {followed.shown})",
            highlight=False,
        )
        raise typer.Exit(INTERRUPTED) from None
    except FollowError as exc:
        size = sink.state.size
        err.print(f"[red]error:[/red] {followed.what}: {escape(str(exc))}")
        err.print(f"follow it again with: {followed.again} --offset {size}", highlight=False)
        raise typer.Exit(1) from exc


# -- the loop


@dataclass
class Page:
    """A piece of the stored log, read over HTTP."""

    start: int
    data: bytes
    end: int
    """Where the next piece starts."""
    size: int
    """The log's stored size so far."""
    complete: bool
    """Nothing more will come."""
    status: str | None = None
    """The status given with it, if any."""


class Follower(ABC):
    """One log followed: what ``follow`` asks of it, beside the log bytes it gives ``sink``."""

    def __init__(self, topic: str, http: httpx.AsyncClient, state: Position, sink: LogSink) -> None:
        self.topic = topic
        self.http = http
        self.state = state
        self.sink = sink

    @abstractmethod
    async def read(self, offset: int) -> Page | None:
        """A page of the stored log from ``offset``; None when HTTP failed."""

    @abstractmethod
    async def ended(self, last: Page) -> str | None:
        """All the log is stored and complete: the final status, or None to follow the stream."""

    @abstractmethod
    async def opened(self) -> None:
        """The stream is open (the note cleared)."""

    @abstractmethod
    async def handle(self, message: dict[str, Any]) -> str | None:
        """A message of the topic (but ``lagged`` and ``error``): the final status when it ends.

        Raises ``Rejoin`` to join the stream again from the offset received.
        """

    @abstractmethod
    def reconnecting(self) -> None:
        """The stream is lost for now; the note says why."""


def auth(target: Target) -> dict[str, str]:
    return {"Authorization": f"Bearer {target.token}"} if target.token else {}


def api(target: Target) -> httpx.AsyncClient:
    """The API over HTTP: the stored log, and the state of what is followed."""
    return httpx.AsyncClient(base_url=f"{target.url}/api/v1", headers=auth(target), timeout=30)


async def fetch(http: httpx.AsyncClient, path: str, **params: Any) -> httpx.Response | None:
    """A GET's answer; None when HTTP failed or the answer is an error."""
    try:
        response = await http.get(path, params=params or None)
    except httpx.HTTPError:
        return None
    return response if response.is_success else None


def events_url(base: str, topic: str, offset: int) -> str:
    parts = urlsplit(base)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    query = urlencode({"topic": topic, "log_offset": offset})
    return urlunsplit((scheme, parts.netloc, f"{parts.path.rstrip('/')}/api/v1/events", query, ""))


async def catch_up(follower: Follower) -> Page | None:
    """The stored log past the offset, page by page, byte for byte; its last page once all of it
    is there and complete.

    The event stream then only carries what is new. (Its log events are text: a stored piece it
    replays may be cut inside a UTF-8 character, which HTTP's bytes never are.) None when more
    may come, or HTTP failed: the event stream replays what is missing.
    """
    state = follower.state
    while True:
        page = await follower.read(state.size)
        if page is None:
            return None
        advanced = page.start <= state.size < page.end
        if advanced:
            follower.sink.write(page.data[state.size - page.start :])
            state.size = page.end
        if page.complete and state.size >= page.size:
            return page
        if not advanced or state.size >= page.size:
            return None


async def follow(target: Target, follower: Follower) -> str:
    """Follow the log from the offset received until it ends; the final status.

    Reconnects from the last offset received when the connection drops, the server says the
    stream ``lagged`` or the follower asks to (``Rejoin``); gives up after a run of failed
    connections.
    """
    state = follower.state
    failures = 0
    loop = asyncio.get_running_loop()
    while True:
        opened: float | None = None
        received = False
        last = await catch_up(follower)
        final = await follower.ended(last) if last is not None else None
        if final:
            return final
        try:
            async with connect(
                events_url(target.url, follower.topic, state.size),
                additional_headers=auth(target),
                max_size=_MAX_MESSAGE,
                open_timeout=15,
                close_timeout=2,
            ) as ws:
                opened = loop.time()
                state.note = ""
                await follower.opened()
                async for raw in ws:
                    received = True
                    final = await _handle(follower, json.loads(raw))
                    if final is not None:
                        return final
            problem = "the server closed the stream"
        except Rejoin as exc:
            problem = str(exc)
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
        state.note = f"reconnecting: {problem}"
        follower.reconnecting()
        await asyncio.sleep(min(0.25 * 2 ** (failures - 1), _RECONNECT_MAX_WAIT))


async def _handle(follower: Follower, message: dict[str, Any]) -> str | None:
    kind = message.get("type")
    if kind == "lagged":
        raise Rejoin("the stream lagged")
    if kind == "error":
        raise FollowError(str(message.get("detail")))
    return await follower.handle(message)
