"""The virtual lab: how long `lab up` takes, and how fast a board's console answers.

    sudo .venv/bin/python -m benchmarks.lab [--round-trips 50]

- `lab up` cold: the Debian packages and the download cache are there, nothing runs
  (the benchmark brings the lab down first);
- `lab up` warm: everything runs already (what a test session or a second `up` pays);
- console round trip: `echo <token>` typed at each board's shell through ser2net, until
  the shell's answer is read back, over raw TCP (lab-x86) and RFC 2217 (lab-arm64).

The lab is left as it was found: up if it was up, down otherwise.
"""

from __future__ import annotations

import argparse
import statistics
import time

import serial

from labfleet.lab.layout import BOARDS, Board
from labfleet.lab.paths import LabPaths
from labfleet.lab.status import status
from labfleet.lab.up import down, up


def timed_up(paths: LabPaths) -> float:
    started = time.monotonic()
    up(paths)
    return time.monotonic() - started


class Shell:
    """A board's shell through its console URL, read with a buffer that keeps what follows a match."""

    def __init__(self, url: str) -> None:
        self.port = serial.serial_for_url(url, timeout=0.05)
        self.pending = b""

    def expect(self, needle: bytes, timeout: float = 5) -> None:
        deadline = time.monotonic() + timeout
        while needle not in self.pending:
            if time.monotonic() > deadline:
                seen = self.pending[-200:]
                raise TimeoutError(f"{self.port.name}: no {needle!r} within {timeout} s; got {seen!r}")
            self.pending += self.port.read(self.port.in_waiting or 1)
        self.pending = self.pending.split(needle, 1)[1]


def round_trips(board: Board, count: int) -> list[float]:
    """Seconds per `echo` round trip at the board's shell."""
    shell = Shell(board.console_url)
    try:
        # What the board printed while nobody listened comes first; then wait for a fresh prompt.
        time.sleep(0.3)
        shell.port.reset_input_buffer()
        shell.port.write(b"\n")
        shell.expect(b"# ")
        samples = []
        for n in range(count):
            token = f"rt{n}x"
            started = time.monotonic()
            shell.port.write(f"echo {token}\n".encode())
            shell.expect(f"\n{token}\r\n".encode())
            samples.append(time.monotonic() - started)
            shell.expect(b"# ")  # the prompt, so the next command starts clean
        return samples
    finally:
        shell.port.close()


def p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--round-trips", type=int, default=50)
    args = parser.parse_args()
    paths = LabPaths.from_env()
    was_up = status(paths).up

    down(paths)
    cold = timed_up(paths)
    warm = timed_up(paths)
    print(f"lab up, cold (nothing running):  {cold:6.1f} s")
    print(f"lab up, warm (everything runs):  {warm:6.1f} s")
    for board in BOARDS:
        samples = round_trips(board, args.round_trips)
        protocol = "rfc2217" if board.rfc2217 else "raw tcp"
        median_ms, p99_ms = statistics.median(samples) * 1000, p99(samples) * 1000
        print(
            f"console round trip {board.name:9} ({protocol:7}): "
            f"median {median_ms:5.1f} ms  p99 {p99_ms:5.1f} ms  over {len(samples)}"
        )
    if not was_up:
        down(paths)


if __name__ == "__main__":
    main()
