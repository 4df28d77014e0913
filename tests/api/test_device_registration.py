"""Registration that reaches the device, against real peers on loopback: an SSH server
running real commands, libvirt's test driver, and TCP consoles.

Validates: 1.2, 1.3, 7.2, 7.3, 7.5, 8.2
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from labfleet.hw.ssh import SshPool, SshSettings
from labfleet.hw.ssh_server import LocalSshServer, new_private_key, public_key_of
from labfleet.services.inventory.device_checks import DeviceChecks

FAST = SshSettings(connect_timeout=3.0, connect_attempts=2, backoff_initial=0.05, backoff_max=0.1)
KEY = new_private_key()


@pytest.fixture
async def ssh_server() -> AsyncIterator[LocalSshServer]:
    async with LocalSshServer(authorized_keys=[public_key_of(private_key=KEY)]) as server:
        yield server


@pytest.fixture
async def checked(app: FastAPI) -> AsyncIterator[None]:
    async with SshPool(settings=FAST) as pool:
        app.state.validator = DeviceChecks(pool=pool, timeout=10, console_timeout=1.5)
        yield


def machine(server_port: int, **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "hostname": "reach-1.lab",
        "address": "127.0.0.1",
        "ssh": {"username": "ci", "port": server_port, "private_key": KEY},
    }
    data.update(overrides)
    return data


async def count(client: httpx.AsyncClient, path: str) -> int:
    return int((await client.get(f"/api/v1/{path}")).json()["count"])


@pytest.mark.usefixtures("checked")
async def test_a_reachable_build_server_joins_with_what_was_detected(
    client: httpx.AsyncClient, ssh_server: LocalSshServer
) -> None:
    r = await client.post("/api/v1/build-servers", json=machine(ssh_server.port))
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["ssh"]["host_key"] == ssh_server.host_key
    assert body["cpu_cores"] >= 1 and body["memory_mb"] > 0 and body["disk_total_gb"] > 0
    arches = {t["architecture"] for t in body["toolchains"]}
    # This machine has its native gcc and the arm64 cross compiler.
    assert {"x86_64", "arm64"} <= arches
    cross = next(t for t in body["toolchains"] if t["architecture"] == "arm64")
    assert cross["target_triplet"].startswith("aarch64-linux-gnu") and cross["version"]
    assert body["status"]["value"] == "online"


@pytest.mark.usefixtures("checked")
@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        ({"address": "127.0.0.1", "ssh_port": 1}, "address", "connection refused"),
        ({"address": "no-such-host.invalid"}, "address", "name not resolved"),
        ({"key": new_private_key()}, "ssh", "authentication failed"),
    ],
    ids=["refused", "unresolved", "wrong-key"],
)
async def test_an_unreachable_build_server_is_refused_with_the_reason(
    client: httpx.AsyncClient, ssh_server: LocalSshServer, change: dict[str, Any], field: str, reason: str
) -> None:
    payload = machine(change.get("ssh_port", ssh_server.port), address=change.get("address", "127.0.0.1"))
    if "key" in change:
        payload["ssh"]["private_key"] = change["key"]
    before = await count(client, "build-servers")
    r = await client.post("/api/v1/build-servers", json=payload)
    assert r.status_code == 422, r.text
    problem = r.json()
    assert problem["field"] == field
    assert reason in problem["detail"]
    assert await count(client, "build-servers") == before


@pytest.mark.usefixtures("checked")
async def test_a_build_server_without_credentials_is_refused(
    client: httpx.AsyncClient, ssh_server: LocalSshServer
) -> None:
    payload = machine(ssh_server.port)
    del payload["ssh"]["private_key"]
    r = await client.post("/api/v1/build-servers", json=payload)
    assert r.status_code == 422
    assert r.json()["field"] == "ssh.private_key"


@pytest.mark.usefixtures("checked")
async def test_a_host_joins_with_libvirt_capabilities(
    client: httpx.AsyncClient, ssh_server: LocalSshServer
) -> None:
    r = await client.post("/api/v1/hosts", json=machine(ssh_server.port, libvirt_uri="test:///default"))
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["cpu_cores"], body["memory_mb"], body["kvm"]) == (16, 3072, False)
    assert body["architectures"] == ["i386"]
    assert body["ssh"]["host_key"] == ssh_server.host_key


@pytest.mark.usefixtures("checked")
async def test_a_host_whose_libvirt_does_not_answer_is_refused(
    client: httpx.AsyncClient, ssh_server: LocalSshServer
) -> None:
    before = await count(client, "hosts")
    r = await client.post(
        "/api/v1/hosts", json=machine(ssh_server.port, libvirt_uri="qemu+tcp://127.0.0.1:1/system")
    )
    assert r.status_code == 422
    assert r.json()["field"] == "libvirt_uri"
    assert "libvirt" in r.json()["detail"]
    assert await count(client, "hosts") == before


async def _console_server(answer: bool) -> asyncio.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(256):
                if answer:
                    writer.write(data.replace(b"\r", b"\r\n") + b"/ # ")
                    await writer.drain()
        finally:
            writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


def board(console_url: str) -> dict[str, Any]:
    return {
        "name": "console-1",
        "board_type": "qemu-virt",
        "architecture": "arm64",
        "serial_number": "CONSOLE-1",
        "console_url": console_url,
    }


@pytest.mark.usefixtures("checked")
async def test_a_board_whose_console_answers_joins(client: httpx.AsyncClient) -> None:
    server = await _console_server(answer=True)
    async with server:
        port = server.sockets[0].getsockname()[1]
        r = await client.post("/api/v1/boards", json=board(f"socket://127.0.0.1:{port}"))
    assert r.status_code == 201, r.text


@pytest.mark.usefixtures("checked")
async def test_a_silent_or_refusing_console_is_refused(client: httpx.AsyncClient) -> None:
    server = await _console_server(answer=False)
    async with server:
        port = server.sockets[0].getsockname()[1]
        r = await client.post("/api/v1/boards", json=board(f"socket://127.0.0.1:{port}"))
    assert r.status_code == 422
    assert r.json()["field"] == "console_url"
    assert "said nothing" in r.json()["detail"]
    r = await client.post("/api/v1/boards", json=board("socket://127.0.0.1:1"))
    assert r.status_code == 422
    assert r.json()["field"] == "console_url"
    assert "refused" in r.json()["detail"]
    assert await count(client, "boards") == 0
