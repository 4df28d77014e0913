"""The CLI against a real ``labfleet serve`` process, on SQLite and PostgreSQL."""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import typer.testing
from typer.testing import CliRunner

from labfleet.cli.main import app
from tests.helpers import LabfleetProcess, free_port

runner = CliRunner()
# typer's runner builds the whole command tree again at every invoke, most of what a short
# command costs in these tests; the tree is the same every time.
typer.testing._get_command = functools.cache(typer.testing._get_command)


class Server:
    def __init__(self, data_dir: Path, db_url: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "LABFLEET_DATA_DIR": str(data_dir),
            "LABFLEET_DATABASE_URL": db_url,
            # These tests are about the CLI and the API: the inventory is made up.
            "LABFLEET_DEVICE_CHECKS": "false",
        }
        self.log = data_dir / f"serve-{self.port}.log"
        self.out = data_dir / f"serve-{self.port}.out"

    def __enter__(self) -> Server:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.log.touch()
        self.proc = LabfleetProcess(
            ["serve", "--port", str(self.port)], env=self.env, stdout=str(self.out), stderr=str(self.log)
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                # Any answer: uvicorn listens once the app's startup is done.
                httpx.get(f"{self.url}/api/v1/docs", timeout=1)
                return self
            except httpx.TransportError:
                if self.proc.poll() is not None:
                    raise RuntimeError(self.log.read_text()) from None
                time.sleep(0.02)
        raise RuntimeError("labfleet serve did not start:\n" + self.log.read_text())

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=15)

    def printed(self) -> str:
        self.__exit__()
        return self.out.read_text()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def server(data_dir: Path, fresh_db_url: str) -> Iterator[Server]:
    with Server(data_dir, fresh_db_url) as s:
        yield s


def cli(server: Server, *args: str, token: str | None = None) -> tuple[int, str]:
    env = {k: server.env[k] for k in ("LABFLEET_DATA_DIR", "LABFLEET_DATABASE_URL")}
    env["LABFLEET_URL"] = server.url
    env["LABFLEET_CLI_CONFIG"] = str(Path(server.env["LABFLEET_DATA_DIR"]) / "no-such.toml")
    if token:
        env["LABFLEET_TOKEN"] = token
    result = runner.invoke(app, list(args), env=env)
    return result.exit_code, result.output


def test_first_start_prints_an_admin_token_once(data_dir: Path, fresh_db_url: str) -> None:
    with Server(data_dir, fresh_db_url) as first:
        printed = first.printed()
    token = next(line.split("=", 1)[1] for line in printed.splitlines() if line.startswith("LABFLEET_TOKEN="))
    with Server(data_dir, fresh_db_url) as second:
        code, out = cli(second, "boards", "list", "--json", token=token)
        assert code == 0, out
        assert json.loads(out) == {"count": 0, "items": []}
        assert "LABFLEET_TOKEN" not in second.printed()


def test_token_commands_work_on_the_database(server: Server) -> None:
    code, out = cli(server, "token", "create", "--name", "alice", "--role", "operator", "--team", "kernel")
    assert code == 0, out
    token = out.strip().splitlines()[-1]
    assert token.startswith("lf_")
    assert cli(server, "boards", "list", token=token)[0] == 0
    code, out = cli(server, "token", "list", "--json")
    rows = {r["name"]: r for r in json.loads(out)}
    assert rows["alice"]["role"] == "operator" and rows["alice"]["team"] == "kernel"
    assert token not in out
    assert cli(server, "token", "revoke", "alice")[0] == 0
    code, out = cli(server, "boards", "list", token=token)
    assert code == 1 and "revoked" in out
    code, out = cli(server, "token", "create", "--name", "bob", "--role", "root")
    assert code == 2 and "role" in out


def admin_token(server: Server) -> str:
    code, out = cli(server, "token", "create", "--name", "admin-cli", "--role", "admin")
    assert code == 0, out
    return out.strip().splitlines()[-1]


def test_inventory_round_trip(server: Server, tmp_path: Path) -> None:
    token = admin_token(server)
    key = tmp_path / "id_ed25519"
    key.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----\n")
    code, out = cli(
        server, "build-servers", "add", "--hostname", "bs1.lab", "--address", "10.9.0.1",
        "--ssh-user", "build",
        "--ssh-key", str(key), "--max-builds", "8", "--label", "rack=r1", "--json", token=token,
    )  # fmt: skip
    assert code == 0, out
    server_id = json.loads(out)["id"]
    assert json.loads(out)["ssh"]["credentials_set"] is True and "BEGIN" not in out

    code, out = cli(
        server, "hosts", "add", "--hostname", "kvm1.lab", "--address", "10.9.0.2", "--ssh-user", "root",
        "--libvirt-uri", "qemu+ssh://root@kvm1.lab/system", "--json", token=token,
    )  # fmt: skip
    assert code == 0, out

    code, out = cli(
        server, "boards", "add", "--name", "rpi-1", "--type", "rpi4", "--arch", "aarch64", "--serial", "SN1",
        "--console", "rfc2217://console:7001", "--power", "driver=pdudaemon", "--power", "url=http://pdu:16421",
        "--power", "pdu=pdu-1", "--power", "outlet=3", "--peripheral", "sd-mux", "--json", token=token,
    )  # fmt: skip
    assert code == 0, out
    made = json.loads(out)
    assert made["architecture"] == "arm64" and made["power"]["params"]["outlet"] == 3

    code, out = cli(server, "build-servers", "list", "--label", "rack=r1", token=token)
    assert code == 0 and "bs1.lab" in out and "1 build server" in out

    code, out = cli(server, "build-servers", "update", str(server_id), "--set", "max_concurrent_builds=2",
                    "--label", "rack=r2", "--json", token=token)  # fmt: skip
    assert code == 0, out
    assert json.loads(out)["max_concurrent_builds"] == 2 and json.loads(out)["labels"] == {"rack": "r2"}

    code, out = cli(server, "boards", "show", str(made["id"]), token=token)
    assert code == 0 and "rpi-1" in out

    code, out = cli(server, "boards", "add", "--name", "rpi-2", "--type", "rpi4", "--arch", "arm64",
                    "--serial", "SN1", "--console", "socket://c:1", token=token)  # fmt: skip
    assert code == 1 and "serial_number" in out

    code, out = cli(server, "hosts", "add", "--hostname", "bad host", "--address", "10.9.0.3",
                    "--ssh-user", "root",
                    "--libvirt-uri", "qemu:///system", token=token)  # fmt: skip
    assert code == 1 and "hostname" in out

    assert cli(server, "boards", "remove", str(made["id"]), "--yes", token=token)[0] == 0
    code, out = cli(server, "boards", "show", str(made["id"]), token=token)
    assert code == 1 and "404" in out


def test_without_a_token_the_cli_says_so(server: Server) -> None:
    code, out = cli(server, "hosts", "list")
    assert code == 1 and "401" in out and "token" in out


def test_an_unreachable_server_is_a_clear_error(server: Server) -> None:
    env_url = "http://127.0.0.1:1"
    result = runner.invoke(app, ["--url", env_url, "--token", "lf_x", "boards", "list"])
    assert result.exit_code == 1 and "cannot reach labfleet" in result.output
