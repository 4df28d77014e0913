"""The serial console against real peers: a shell on a pty served by socat (``socket://``), the
same behind ser2net's RFC 2217 port (``rfc2217://``), and a pty opened as a device path. Each
test runs over all three.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from labfleet.errors import Timeout, Unreachable
from labfleet.hw.console import ConsolePort, LogSink, SerialConsole
from tests.helpers import free_port
from tests.hw.daemons_console import pty_shell, ser2net_shell, socat_shell

# pyserial's RFC 2217 client still names its reader thread the old way.
pytestmark = [
    pytest.mark.filterwarnings("ignore:setDaemon:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:setName:DeprecationWarning"),
]

# The shell's prompt: root's "# " or a user's "$ ", at the end of what it printed.
PROMPT = r"[#$] $"


@pytest.fixture(scope="module")
def socat_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    with socat_shell(tmp_path_factory.mktemp("socat")) as port:
        yield port


@pytest.fixture(scope="module")
def ser2net_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    with ser2net_shell(tmp_path_factory.mktemp("ser2net")) as port:
        yield port


@pytest.fixture(scope="module")
def pty_path(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with pty_shell(tmp_path_factory.mktemp("pty")) as tty:
        yield tty


@pytest.fixture(params=["socket", "rfc2217", "device"])
def url(request: pytest.FixtureRequest) -> str:
    if request.param == "socket":
        return f"socket://127.0.0.1:{request.getfixturevalue('socat_port')}"
    if request.param == "rfc2217":
        return f"rfc2217://127.0.0.1:{request.getfixturevalue('ser2net_port')}?ign_set_control"
    return str(request.getfixturevalue("pty_path"))


def console(url: str, log: LogSink | None = None) -> SerialConsole:
    return SerialConsole(ConsolePort(url=url), log=log, open_timeout=10)


async def test_a_command_run_at_the_prompt_gives_its_output_and_exit_status(url: str) -> None:
    # Validates: 8.2
    async with console(url) as board:
        assert (await board.run("echo hello", timeout=10)).output == "hello\n"
        assert (await board.run("echo hello", timeout=10)).exit_status == 0
        assert (await board.run("sh -c 'exit 7'", timeout=10)).exit_status == 7
        assert (await board.run("printf 'a\\nb\\n'; printf tail", timeout=10)).output == "a\nb\ntail"
        failed = await board.run("ls /no/such/dir", timeout=10)
        assert failed.exit_status != 0
        assert "/no/such/dir" in failed.output


async def test_long_output_arrives_whole(url: str) -> None:
    # Validates: 8.2
    async with console(url) as board:
        result = await board.run("seq 1 20000", timeout=30)
    assert result.exit_status == 0
    assert result.output.split() == [str(n) for n in range(1, 20001)]


async def test_expect_returns_the_match_and_what_came_before(url: str) -> None:
    # Validates: 6.5
    async with console(url) as board:
        # The quotes split the words, so the echo of the typed line cannot match.
        await board.write("echo 'Starting ker''nel'; echo 'buildroot log''in:'\n", timeout=5)
        found = await board.expect(r"(\w+) login:", timeout=10)
    assert found.match.group(1) == "buildroot"
    assert found.text == "buildroot login:"
    assert "Starting kernel" in found.before


async def test_expect_times_out_when_the_pattern_never_comes(url: str) -> None:
    # Validates: 6.5
    async with console(url) as board:
        await board.write("echo 'still ''booting'\n", timeout=5)
        started = time.monotonic()
        with pytest.raises(Timeout, match="never-printed"):
            await board.expect("never-printed", timeout=0.5)
        assert time.monotonic() - started < 3
        # The console is still usable, and nothing was lost while waiting.
        assert "still booting" in (await board.expect("still booting", timeout=5)).text
        assert (await board.run("echo after", timeout=10)).output == "after\n"


@pytest.mark.parametrize("sink", ["file", "callback"])
async def test_the_capture_holds_every_byte_the_console_said(url: str, sink: str, tmp_path: Path) -> None:
    # Validates: 6.5
    chunks: list[bytes] = []
    log_file = tmp_path / "console.log"
    consumed: list[str] = []
    async with console(url, log_file if sink == "file" else chunks.append) as board:
        await board.write("echo 'first ''line'\n", timeout=5)
        found = await board.expect("first line", timeout=10)
        consumed += [found.before, found.text]
        await board.write("seq 1 3000; echo 'last ''line'\n", timeout=5)
        for pattern in ("last line", PROMPT):
            found = await board.expect(pattern, timeout=10)
            consumed += [found.before, found.text]
        consumed.append(await board.read(timeout=0))
    captured = log_file.read_bytes() if sink == "file" else b"".join(chunks)
    # Everything read went to the capture, in order, and nothing else did.
    assert captured.decode() == "".join(consumed)
    assert "\n2999\r\n3000\r\n" in captured.decode()


@pytest.mark.parametrize(
    "template", ["socket://127.0.0.1:{port}", "rfc2217://127.0.0.1:{port}?ign_set_control"]
)
async def test_a_refused_console_is_unreachable(template: str) -> None:
    # Validates: 8.2
    with pytest.raises(Unreachable, match="refused"):
        async with console(template.format(port=free_port())):
            pass


async def test_a_missing_device_is_unreachable(tmp_path: Path) -> None:
    # Validates: 8.2
    with pytest.raises(Unreachable, match="No such file"):
        async with console(str(tmp_path / "ttyUSB9")):
            pass
