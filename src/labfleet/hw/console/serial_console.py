"""Serial consoles through pyserial URLs: a device path, ``socket://`` or ``rfc2217://``.

pyserial blocks, so it never runs on the event loop: one reader thread per console
pulls bytes as they come and hands them to the loop, and one worker thread opens,
writes and closes. Everything the console says goes, byte for byte and in order, to
the capture sink (a file or a callback) as soon as it is read, whether or not anyone
is waiting for it; ``expect`` and ``run`` consume from a decoded buffer of the same
bytes.

Reading is cheap on purpose: on a device or a socket the reader waits on the file
descriptor and takes everything available in one system call (on a socket it also
acknowledges at once, see ``open``); on ``rfc2217://``, where pyserial's own thread
queues the bytes, it takes the queue's whole content. No fixed sleeps: a wait ends as
soon as the bytes it needs have arrived. (An RFC 2217 server should set TCP_NODELAY —
ser2net's ``tcp(nodelay)`` — or each round trip waits for delayed ACKs, ~40 ms.)
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import os
import re
import secrets
import select
import socket
import stat
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Self, TypeVar

import serial

from labfleet.errors import Conflict, DeviceError, Invalid, Timeout, Unreachable
from labfleet.hw.console.protocol import ConsoleMatch, ConsolePort, ConsoleResult
from labfleet.hw.translate import serial_errors

LogSink = Path | Callable[[bytes], None]
_T = TypeVar("_T")

# How long the reader of a queue-based port (rfc2217://) blocks before it looks whether
# the console is closing. It bounds close() only: data ends a wait at once.
_QUEUE_SLICE = 0.2
_CHUNK = 65536
# Unconsumed output kept for expect(); older output is still in the capture.
_MAX_BUFFER = 1 << 20
# A match must start at most this far before the newest output (patterns are line-sized).
_LOOKBEHIND = 1 << 16
_TAIL = 200


class SerialConsole:
    """A console on a pyserial URL; an async context manager that opens and closes it."""

    def __init__(
        self,
        port: ConsolePort,
        *,
        log: LogSink | None = None,
        open_timeout: float = 10.0,
        name: str | None = None,
    ) -> None:
        self._config = port
        self._log = log
        self._open_timeout = open_timeout
        self._what = name or port.url
        self._port: serial.Serial | None = None
        self._io: ThreadPoolExecutor | None = None
        self._reader: threading.Thread | None = None
        self._stopping = threading.Event()
        self._wake: tuple[int, int] | None = None
        self._log_file: BinaryIO | None = None
        self._quickack: socket.socket | None = None
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._text = ""
        self._trimmed = 0
        self._arrived = asyncio.Event()
        self._error: DeviceError | None = None
        self._busy = asyncio.Lock()

    async def __aenter__(self) -> Self:
        await self.open(timeout=self._open_timeout)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def open(self, *, timeout: float) -> None:
        """Connect; ``Unreachable`` when the endpoint refuses, ``Timeout`` when it does not answer."""
        if self._port is not None:
            raise Conflict(f"{self._what}: console already open")
        loop = asyncio.get_running_loop()
        io = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"console {self._what}")
        opening: Future[tuple[serial.Serial, BinaryIO | None]] = io.submit(self._open_blocking)
        opened = False
        try:
            port, log_file = await asyncio.wait_for(asyncio.wrap_future(opening, loop=loop), timeout)
            opened = True
        except TimeoutError:
            raise Timeout(f"{self._what}: console did not open within {timeout:g} s") from None
        finally:
            if not opened:
                # The thread may still open the port after we gave up: close it then.
                opening.add_done_callback(_close_late)
                io.shutdown(wait=False)
        self._io, self._port, self._log_file = io, port, log_file
        self._stopping.clear()
        self._error = None
        self._text = ""
        self._decoder.reset()
        try:
            fd: int | None = port.fileno()
        except (OSError, ValueError):
            fd = None  # rfc2217:// keeps its bytes in a queue of its own
        if fd is not None:
            self._wake = os.pipe()
            if stat.S_ISSOCK(os.fstat(fd).st_mode):
                # Peers (socat, QEMU) send a command's output in small pieces; with Nagle on
                # their side and delayed ACKs on ours, each piece after the first waited up
                # to 40 ms for our ACK. Acknowledging at once makes a round trip ~0.5 ms.
                self._quickack = socket.socket(fileno=os.dup(fd))
        self._reader = threading.Thread(
            target=self._pump, args=(loop, port, fd), name=f"console reader {self._what}", daemon=True
        )
        self._reader.start()

    async def close(self) -> None:
        """Stop reading and disconnect; the capture holds everything read until now."""
        if self._port is None or self._io is None:
            return
        port, io = self._port, self._io
        self._port, self._io = None, None
        self._stopping.set()
        if self._wake is not None:
            os.write(self._wake[1], b"x")
        try:
            await asyncio.get_running_loop().run_in_executor(io, self._close_blocking, port)
        finally:
            io.shutdown(wait=False)

    async def write(self, data: str | bytes, *, timeout: float) -> None:
        """Send ``data`` (text is sent as UTF-8)."""
        payload = data.encode() if isinstance(data, str) else data
        await self._write(payload, timeout)

    async def read(self, *, timeout: float) -> str:
        """What the console said and nobody consumed yet; waits up to ``timeout`` for something."""
        async with self._busy:
            if not self._text and timeout > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout):
                        await self._wait_for_output()
            if not self._text and self._error is not None:
                raise self._error
            text, self._text = self._text, ""
            return text

    async def expect(self, pattern: str | re.Pattern[str], *, timeout: float) -> ConsoleMatch:
        """Wait for ``pattern``; the match and the output before it are consumed."""
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        async with self._busy:
            try:
                async with asyncio.timeout(timeout):
                    return await self._expect(regex)
            except TimeoutError:
                raise self._timed_out(f"{regex.pattern!r} did not appear", timeout) from None

    async def run(self, command: str, *, timeout: float) -> ConsoleResult:
        """Run one shell command line at the prompt: its output, without the echo, and exit status.

        The line is followed by ``; echo <marker>$?`` so it must end where a command may end
        (not in a comment, not with ``&``). Output line ends are ``\n``.
        """
        if "\n" in command or "\r" in command:
            raise Invalid("a console command is one line", field="command")
        token = secrets.token_hex(6)
        # The shell prints the markers without the quotes it was sent with, so the echo of
        # the typed line can never be mistaken for them.
        line = f'echo __LF_""B{token}__; {command}; echo __LF_""E{token}_$?__\n'
        begin = re.compile(rf"__LF_B{token}__\r*\n")
        end = re.compile(rf"__LF_E{token}_(\d+)__")
        async with self._busy:
            try:
                async with asyncio.timeout(timeout):
                    await self._write(line.encode(), timeout)
                    await self._expect(begin)
                    done = await self._expect(end)
            except TimeoutError:
                raise self._timed_out(f"`{command}` did not finish", timeout) from None
        output = re.sub(r"\r+\n", "\n", done.before)
        return ConsoleResult(output, int(done.match.group(1)))

    # -- on the event loop ---------------------------------------------------------

    async def _write(self, payload: bytes, timeout: float) -> None:
        if self._port is None or self._io is None:
            raise Conflict(f"{self._what}: console is not open")
        writing = asyncio.get_running_loop().run_in_executor(
            self._io, self._write_blocking, self._port, payload
        )
        try:
            await asyncio.wait_for(writing, timeout)
        except TimeoutError:
            raise Timeout(
                f"{self._what}: console did not take {len(payload)} bytes within {timeout:g} s"
            ) from None

    async def _expect(self, regex: re.Pattern[str]) -> ConsoleMatch:
        start, trimmed = 0, self._trimmed
        while True:
            # Output dropped from the head of the buffer moved everything left.
            start = max(0, start - (self._trimmed - trimmed))
            trimmed = self._trimmed
            found = regex.search(self._text, max(0, start - _LOOKBEHIND))
            if found is not None:
                before = self._text[: found.start()]
                self._text = self._text[found.end() :]
                return ConsoleMatch(found, before)
            # What arrived before the console failed is searched first; then nothing more will come.
            if self._error is not None:
                raise self._error
            start = len(self._text)
            await self._wait_for_output()

    async def _wait_for_output(self) -> None:
        """Until more output arrives or the console fails."""
        if self._error is not None:
            return
        if self._port is None:
            raise Conflict(f"{self._what}: console is not open")
        self._arrived.clear()
        await self._arrived.wait()

    def _timed_out(self, what: str, timeout: float) -> DeviceError:
        if self._error is not None:
            return self._error
        tail = self._text[-_TAIL:]
        return Timeout(f"{self._what}: {what} within {timeout:g} s; last output: {tail!r}")

    def _feed(self, chunk: bytes) -> None:
        self._text += self._decoder.decode(chunk)
        if len(self._text) > _MAX_BUFFER:
            drop = len(self._text) - _MAX_BUFFER
            self._text = self._text[drop:]
            self._trimmed += drop
        self._arrived.set()
        if callable(self._log):
            self._log(chunk)

    def _fail(self, error: DeviceError) -> None:
        self._error = error
        self._arrived.set()

    # -- in threads ----------------------------------------------------------------

    def _open_blocking(self) -> tuple[serial.Serial, BinaryIO | None]:
        with serial_errors(self._what):
            port = serial.serial_for_url(self._config.url, do_not_open=True)
            port.baudrate = self._config.baudrate
            port.timeout = _QUEUE_SLICE
            port.open()
        log_file = None
        if isinstance(self._log, Path):
            try:
                log_file = self._log.open("ab")
            except OSError:
                port.close()
                raise
        return port, log_file

    def _write_blocking(self, port: serial.Serial, payload: bytes) -> None:
        with serial_errors(self._what):
            port.write(payload)

    def _pump(self, loop: asyncio.AbstractEventLoop, port: serial.Serial, fd: int | None) -> None:
        """The reader thread: every byte read goes to the capture, then to the loop."""
        while not self._stopping.is_set():
            try:
                with serial_errors(self._what):
                    chunk = self._pull_fd(fd) if fd is not None else self._pull_queue(port)
            except DeviceError as exc:
                self._to_loop(loop, self._fail, exc)
                return
            if chunk is None:
                return
            if not chunk:
                continue
            if self._log_file is not None:
                self._log_file.write(chunk)
                self._log_file.flush()
            self._to_loop(loop, self._feed, chunk)

    def _pull_fd(self, fd: int) -> bytes | None:
        if self._wake is None:
            return None
        ready, _, _ = select.select([fd, self._wake[0]], [], [])
        if self._wake[0] in ready:
            return None
        try:
            data = os.read(fd, _CHUNK)
        except BlockingIOError:
            return b""
        if self._quickack is not None:
            self._quickack.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        if not data:
            raise Unreachable(f"{self._what}: the other end closed the console")
        return data

    def _pull_queue(self, port: serial.Serial) -> bytes | None:
        data = port.read(1)
        if not data:
            return None if self._stopping.is_set() else b""
        waiting = port.in_waiting
        return data + port.read(waiting) if waiting else data

    def _to_loop(self, loop: asyncio.AbstractEventLoop, callback: Callable[[_T], None], arg: _T) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is listening any more
            loop.call_soon_threadsafe(callback, arg)

    def _close_blocking(self, port: serial.Serial) -> None:
        if self._reader is not None:
            self._reader.join()
            self._reader = None
        with contextlib.suppress(serial.SerialException, OSError):
            port.close()
        if self._wake is not None:
            for fd in self._wake:
                os.close(fd)
            self._wake = None
        if self._quickack is not None:
            self._quickack.close()
            self._quickack = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None


def _close_late(opening: Future[tuple[serial.Serial, BinaryIO | None]]) -> None:
    if opening.cancelled() or opening.exception() is not None:
        return
    port, log_file = opening.result()
    with contextlib.suppress(serial.SerialException, OSError):
        port.close()
    if log_file is not None:
        log_file.close()
