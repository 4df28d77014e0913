"""A board's console as any client reads it: a pyserial URL served by the lab's ser2net."""

from __future__ import annotations

import time
from types import TracebackType

import serial


class Console:
    """Expect-style reading of one console (socket:// or rfc2217://...?ign_set_control)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.port = serial.serial_for_url(url, timeout=0.05)
        self.seen = b""

    def __enter__(self) -> Console:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.port.close()

    def read_for(self, seconds: float) -> bytes:
        """Everything that arrives within ``seconds``."""
        data = b""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            data += self.port.read(self.port.in_waiting or 1)
        self.seen += data
        return data

    def drain(self, *, quiet: float = 0.3, limit: float = 5.0) -> bytes:
        """Read until the console has been quiet for ``quiet`` seconds.

        A pty buffers what a board printed while no client was connected; a new client
        receives it first, so tests drain before they act.
        """
        data = b""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            chunk = self.read_for(quiet)
            if not chunk:
                break
            data += chunk
        return data

    def expect(self, needle: bytes, *, timeout: float) -> bytes:
        """Read until ``needle`` arrives; what arrived up to and including it."""
        data = b""
        deadline = time.monotonic() + timeout
        while needle not in data:
            if time.monotonic() >= deadline:
                raise AssertionError(f"{self.url}: no {needle!r} within {timeout:g} s; got {data[-500:]!r}")
            chunk = self.port.read(self.port.in_waiting or 1)
            data += chunk
            self.seen += chunk
        return data

    def send(self, line: str) -> None:
        self.port.write(line.encode() + b"\n")

    def round_trip(self, token: str, *, timeout: float = 5) -> float:
        """Seconds from sending ``echo <token>`` at the shell to reading the shell's answer."""
        started = time.monotonic()
        self.send(f"echo {token}")
        # The answer, not the echo of the command line: the token alone on its line.
        self.expect(f"\n{token}\r\n".encode(), timeout=timeout)
        return time.monotonic() - started
