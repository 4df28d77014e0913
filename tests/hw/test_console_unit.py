"""The console's logic against scripted peers: a loopback TCP server in the test, pyserial's loop://."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from labfleet.errors import Conflict, Invalid, Timeout, Unreachable
from labfleet.hw.console import ConsolePort, ConsoleProtocol, ConsoleResult, SerialConsole
from labfleet.hw.fakes import FakeConsole

# pyserial's RFC 2217 client still names its reader thread the old way.
pytestmark = [
    pytest.mark.filterwarnings("ignore:setDaemon:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:setName:DeprecationWarning"),
]

WAKE = "\r"
Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@dataclass
class Peer:
    """A TCP peer on loopback that plays ``script`` with whoever connects, once woken up.

    pyserial empties its input when it opens a port, so a peer that spoke at once could
    lose its first words: each script starts when the console sends a first byte (as an
    operator presses Enter on a console), by ``wake``.
    """

    script: Script
    port: int = 0
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"socket://127.0.0.1:{self.port}"


@pytest.fixture
async def peer() -> AsyncIterator[Callable[[Script], Awaitable[Peer]]]:
    servers: list[asyncio.Server] = []

    async def start(script: Script) -> Peer:
        served = Peer(script)

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                await reader.readexactly(1)
                await script(reader, writer)
            finally:
                writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        servers.append(server)
        served.port = server.sockets[0].getsockname()[1]
        return served

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


async def test_a_pattern_split_across_chunks_is_found(peer: Callable[[Script], Awaitable[Peer]]) -> None:
    # Validates: 6.5
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for piece in (
            b"U-Boot 2024.01\r\nHit any key to stop autoboot:  ",
            b"3",
            b"\r\nbuildroot log",
            b"in: ",
        ):
            writer.write(piece)
            await writer.drain()
            await asyncio.sleep(0.02)
        await reader.read(1)

    served = await peer(script)
    async with SerialConsole(ConsolePort(url=served.url)) as board:
        await board.write(WAKE, timeout=5)
        autoboot = await board.expect(r"autoboot:\s+(\d)", timeout=5)
        login = await board.expect("login: ", timeout=5)
    assert autoboot.match.group(1) == "3"
    assert autoboot.before == "U-Boot 2024.01\r\nHit any key to stop "
    assert login.before == "\r\nbuildroot "


async def test_the_capture_keeps_raw_bytes_and_the_text_replaces_undecodable_ones(
    peer: Callable[[Script], Awaitable[Peer]], tmp_path: Path
) -> None:
    # Validates: 6.5
    garbage = b"\xff\xfe baud mismatch \xe2\x82"  # ends in half of a euro sign
    rest = b"\xac ok\r\n"

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(garbage)
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(rest)
        await writer.drain()
        await reader.read(1)

    served = await peer(script)
    log = tmp_path / "capture.log"
    async with SerialConsole(ConsolePort(url=served.url), log=log) as board:
        await board.write(WAKE, timeout=5)
        found = await board.expect("ok", timeout=5)
    assert log.read_bytes() == garbage + rest
    assert found.before == "\ufffd\ufffd baud mismatch € "


async def test_a_console_closed_by_the_other_end_is_unreachable(
    peer: Callable[[Script], Awaitable[Peer]],
) -> None:
    # Validates: 8.2
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"bye\r\n")
        await writer.drain()

    served = await peer(script)
    async with SerialConsole(ConsolePort(url=served.url)) as board:
        await board.write(WAKE, timeout=5)
        assert (await board.expect("bye", timeout=5)).text == "bye"
        with pytest.raises(Unreachable, match="closed"):
            await board.expect("login:", timeout=5)


async def test_a_console_that_never_answers_times_out_opening(
    peer: Callable[[Script], Awaitable[Peer]],
) -> None:
    # Validates: 8.2
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()

    # Never woken: the client's telnet negotiation is read as the first byte, then nothing answers.
    served = await peer(silent)
    started = time.monotonic()
    with pytest.raises(Timeout, match="did not open"):
        # An RFC 2217 client waits for the server's telnet negotiation, which never comes.
        await SerialConsole(ConsolePort(url=f"rfc2217://127.0.0.1:{served.port}")).open(timeout=0.5)
    assert time.monotonic() - started < 2


async def test_read_returns_what_is_there_without_waiting_for_more() -> None:
    # Validates: 8.2
    # loop:// hands back what is written: a port whose bytes come through pyserial's queue.
    async with SerialConsole(ConsolePort(url="loop://")) as loop:
        assert await loop.read(timeout=0) == ""
        await loop.write("hello\n", timeout=5)
        assert await loop.read(timeout=5) == "hello\n"
        started = time.monotonic()
        assert await loop.read(timeout=0.2) == ""
        assert time.monotonic() - started < 1


async def test_a_command_is_one_line_and_the_console_must_be_open() -> None:
    # Validates: 8.2
    board = SerialConsole(ConsolePort(url="loop://"))
    with pytest.raises(Conflict):
        await board.write("x", timeout=1)
    async with board:
        with pytest.raises(Invalid):
            await board.run("echo a\necho b", timeout=1)
        with pytest.raises(Conflict):
            await board.open(timeout=1)


async def test_the_in_package_fake_behaves_like_a_console() -> None:
    # Validates: 6.5
    board = FakeConsole(output="U-Boot\r\nlogin: ").on(r"^uname", "Linux\n")
    assert isinstance(board, ConsoleProtocol)
    assert (await board.expect("login: ", timeout=1)).before == "U-Boot\r\n"
    assert await board.run("uname -s", timeout=1) == ConsoleResult("Linux\n", 0)
    assert (await board.run("reboot", timeout=1)).exit_status == 127
