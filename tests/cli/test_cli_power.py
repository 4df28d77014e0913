"""``labfleet boards power``: against a real ``labfleet serve`` switching a simulated board through
site commands and watching its TCP console.

Validates: 18.1, 18.2, 18.3, 18.4
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.test_power_api import SimBoard
from tests.cli.test_cli_against_server import Server, admin_token, cli


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[SimBoard]:
    """The simulated board, served by an event loop of its own (the CLI under test blocks)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    board = SimBoard(tmp_path, "sim-cli")
    asyncio.run_coroutine_threadsafe(board.__aenter__(), loop).result(10)
    try:
        yield board
    finally:
        asyncio.run_coroutine_threadsafe(board.__aexit__(None, None, None), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@pytest.fixture
def server(tmp_path: Path, fresh_db_url: str) -> Iterator[Server]:
    s = Server(tmp_path / "data", fresh_db_url)
    s.env["LABFLEET_ENGINE"] = "false"
    with s:
        yield s


def test_power_on_state_cycle_and_history(server: Server, sim: SimBoard, tmp_path: Path) -> None:
    token = admin_token(server)
    spec = tmp_path / "board.json"
    spec.write_text(
        json.dumps(
            {
                "name": sim.name,
                "board_type": "sim",
                "architecture": "arm64",
                "serial_number": "SN-CLI",
                "console_url": f"socket://127.0.0.1:{sim.port}",
                "power": sim.power(),
                "labels": {"boot-pattern": sim.banner},
            }
        )
    )
    code, out = cli(server, "boards", "add", "--from-file", str(spec), "--json", token=token)
    assert code == 0, out
    ident = str(json.loads(out)["id"])

    code, out = cli(server, "boards", "power", "on", ident, token=token)
    assert code == 0, out
    assert f"board {sim.name}: power on #1 succeeded" in out and "now on" in out

    code, out = cli(server, "boards", "power", "state", ident, "--json", token=token)
    assert code == 0, out
    assert json.loads(out)["power_state"] == "on"

    code, out = cli(
        server, "boards", "power", "cycle", ident, "--off", "0.2", "--boot-timeout", "10", token=token
    )
    assert code == 0, out
    assert "booted on attempt 1 of 3" in out and sim.banner in out
    assert sim.switched() == ["on", "off", "on"]

    sim.fail_boots = 1
    code, out = cli(
        server, "boards", "power", "cycle", ident, "--off", "0.2", "--boot-timeout", "1", "--retries", "1",
        "--json", token=token,
    )  # fmt: skip
    assert code == 1
    failed = json.loads(out)
    assert failed["status"]["value"] == "failed" and failed["boot_seen"] is False

    code, out = cli(server, "boards", "power", "history", ident, "--json", token=token)
    assert code == 0, out
    page = json.loads(out)
    assert [a["action"] for a in page["items"]] == ["cycle", "cycle", "state", "on"]
    code, out = cli(server, "boards", "power", "history", ident, "--action", "cycle", token=token)
    assert code == 0 and "2 power action(s)" in out

    code, out = cli(server, "boards", "show", ident, "--json", token=token)
    assert json.loads(out)["status"]["value"] == "failed"
