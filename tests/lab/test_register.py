"""`lab up --register` registers the lab in a running labfleet, once: again is not an error."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from labfleet.cli.main import app
from labfleet.lab.layout import BOARDS
from tests.lab.conftest import VirtualLab

pytestmark = pytest.mark.lab


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def labfleet_server(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A real `labfleet serve` on SQLite; its URL and the admin token it prints on first start."""
    port = free_port()
    env = {
        **os.environ,
        "LABFLEET_DATA_DIR": str(tmp_path / "data"),
        "LABFLEET_DATABASE_URL": f"sqlite:///{tmp_path / 'labfleet.db'}",
    }
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "labfleet.cli.main", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    try:
        assert proc.stdout is not None
        token = ""
        for line in proc.stdout:  # the token is printed before the server starts listening
            if line.startswith("LABFLEET_TOKEN="):
                token = line.strip().split("=", 1)[1]
                break
        assert token, (tmp_path / "serve.log").read_text()
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{url}/api/v1/openapi.json", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
                time.sleep(0.1)
        yield url, token
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        log.close()


def items(url: str, token: str, collection: str) -> dict[str, dict[str, Any]]:
    response = httpx.get(f"{url}/api/v1/{collection}", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    key = "name" if collection == "boards" else "hostname"
    return {item[key]: item for item in response.json()["items"]}


def test_up_register_registers_everything_once(
    lab: VirtualLab, labfleet_server: tuple[str, str], tmp_path: Path
) -> None:
    url, token = labfleet_server
    env = {
        **lab.paths.env(),
        "LABFLEET_URL": url,
        "LABFLEET_TOKEN": token,
        "LABFLEET_CLI_CONFIG": str(tmp_path / "no-such.toml"),
    }
    first = CliRunner().invoke(app, ["lab", "up", "--register", "--json"], env=env)
    assert first.exit_code == 0, first.output
    again = CliRunner().invoke(app, ["lab", "up", "--register", "--json"], env=env)
    assert again.exit_code == 0, again.output
    assert again.output.count("already registered") == 2 + len(BOARDS)

    build = items(url, token, "build-servers")["lab-build"]
    assert build["address"] == lab.host
    assert build["ssh"] | {"host_key": None} == {
        "port": lab.ssh_port,
        "username": lab.build_user,
        "credentials_set": True,
        "host_key": None,
    }
    host = items(url, token, "hosts")["lab-kvm"]
    assert host["libvirt_uri"] == lab.libvirt_uri and host["ssh"]["username"] == "root"
    boards = items(url, token, "boards")
    for board in BOARDS:
        shown = boards[board.name]
        assert shown["console_url"] == board.console_url
        assert shown["board_type"] == board.board_type
        assert shown["power"]["driver"] == "pdudaemon"
        assert shown["power"]["params"] | {"outlet": board.outlet} == shown["power"]["params"]
        assert shown["flash"]["driver"] == "dd"
        assert shown["flash"]["params"]["device"] == str(lab.boot_image(board))
        assert "PRIVATE KEY" not in str(shown)


def test_register_without_a_token_says_so(
    lab: VirtualLab, labfleet_server: tuple[str, str], tmp_path: Path
) -> None:
    url, _ = labfleet_server
    env = {
        **lab.paths.env(),
        "LABFLEET_URL": url,
        "LABFLEET_TOKEN": "",
        "LABFLEET_CLI_CONFIG": str(tmp_path / "no-such.toml"),
    }
    result = CliRunner().invoke(app, ["lab", "up", "--register"], env=env)
    assert result.exit_code == 1
    assert "token" in result.output
