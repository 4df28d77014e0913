"""The power API with real drivers: site commands (the ``command`` driver, run on this machine)
switching a simulated board whose console is a TCP socket, and pdudaemon at a dead address.

Validates: 18.1, 18.2, 18.3, 18.4, 18.5
"""

from __future__ import annotations

import asyncio
import contextlib
import shlex
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.db.models import Alert, Board
from tests.helpers import free_port


class SimBoard:
    """A board on this machine: power commands write its state file; when the state turns on,
    its console (a TCP server) prints the boot banner, or a panic for each boot told to fail."""

    def __init__(self, directory: Path, name: str) -> None:
        self.name = name
        self.banner = f"sim: {name} booted"
        self.state = directory / "state"
        self.calls = directory / "calls"
        self.fail_boots = 0
        self._clients: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None
        self._watcher: asyncio.Task[None] | None = None
        self.port = 0

    def power(self) -> dict[str, Any]:
        state, calls = shlex.quote(str(self.state)), shlex.quote(str(self.calls))
        return {
            "driver": "command",
            "on": f"echo on > {state} && echo on >> {calls}",
            "off": f"echo off > {state} && echo off >> {calls}",
            "state": f"cat {state} 2>/dev/null || echo unknown",
        }

    def switched(self) -> list[str]:
        return self.calls.read_text().split() if self.calls.exists() else []

    async def __aenter__(self) -> SimBoard:
        self._server = await asyncio.start_server(self._connected, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        self._watcher = asyncio.create_task(self._watch())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None and self._watcher is not None
        self._watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._watcher
        for writer in list(self._clients):
            writer.close()
        self._server.close()
        await self._server.wait_closed()

    async def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._clients.add(writer)
        try:
            while await reader.read(1024):
                writer.write(b"\r\n/ # ")  # a shell that answers a carriage return
        finally:
            self._clients.discard(writer)

    def _now(self) -> str:
        return self.state.read_text().strip() if self.state.exists() else "off"

    async def _watch(self) -> None:
        last = self._now()
        while True:
            await asyncio.sleep(0.01)
            now = self._now()
            if now == "on" and last != "on":
                await asyncio.sleep(0.1)  # a kernel takes its time
                if self.fail_boots:
                    self.fail_boots -= 1
                    text = "\r\nLinux version 6.1\r\nKernel panic - not syncing\r\n"
                else:
                    text = f"\r\nLinux version 6.1\r\n{self.banner}\r\n"
                for writer in list(self._clients):
                    writer.write(text.encode())
            last = now


@pytest.fixture
async def sim(tmp_path: Path) -> AsyncIterator[SimBoard]:
    async with SimBoard(tmp_path, "sim-1") as board:
        yield board


async def register(client: httpx.AsyncClient, name: str, **fields: Any) -> dict[str, Any]:
    body = {
        "name": name,
        "board_type": "sim",
        "architecture": "arm64",
        "serial_number": f"SN-{name}",
        **fields,
    }
    r = await client.post("/api/v1/boards", json=body)
    assert r.status_code == 201, r.text
    return dict(r.json())


@pytest.fixture
async def board(client: httpx.AsyncClient, sim: SimBoard) -> dict[str, Any]:
    return await register(
        client,
        sim.name,
        console_url=f"socket://127.0.0.1:{sim.port}",
        power=sim.power(),
        labels={"boot-pattern": sim.banner},
    )


async def test_switching_and_reading_the_state_are_recorded(
    client: httpx.AsyncClient, board: dict[str, Any], sim: SimBoard
) -> None:
    # Validates: 18.1, 18.3, 18.4
    base = f"/api/v1/boards/{board['id']}"
    on = await client.put(f"{base}/power", json={"state": "on"})
    assert on.status_code == 200, on.text
    assert on.json()["status"]["value"] == "succeeded" and on.json()["power_state"] == "on"
    state = (await client.get(f"{base}/power")).json()
    assert (state["action"], state["power_state"]) == ("state", "on")
    off = (await client.put(f"{base}/power", json={"state": "off"})).json()
    assert off["power_state"] == "off" and sim.switched() == ["on", "off"]
    assert (await client.get(f"{base}/power")).json()["power_state"] == "off"

    page = (await client.get(f"{base}/power-actions")).json()
    assert page["count"] == 4
    assert [(a["action"], a["power_state"]) for a in page["items"]] == [
        ("state", "off"),
        ("off", "off"),
        ("state", "on"),
        ("on", "on"),
    ]
    first = page["items"][-1]
    assert first["requested_by"] == "t-admin" and first["board"] == sim.name
    assert first["finished_at"] >= first["started_at"] and first["duration_s"] >= 0
    one = await client.get(first["url"].removeprefix("http://lab"))
    assert one.status_code == 200 and one.json() == first
    filtered = (await client.get(f"{base}/power-actions", params={"action": "off", "limit": 1})).json()
    assert filtered["count"] == 1 and filtered["items"][0]["id"] == off["id"]


async def test_a_power_cycle_watches_the_console_for_the_boot(
    client: httpx.AsyncClient, board: dict[str, Any], sim: SimBoard
) -> None:
    # Validates: 18.2, 18.4
    r = await client.post(
        f"/api/v1/boards/{board['id']}/power-cycle", json={"off_s": 0.2, "boot_timeout_s": 10}
    )
    assert r.status_code == 200, r.text
    action = r.json()
    assert action["status"]["value"] == "succeeded", action
    assert (action["boot_seen"], action["attempts"], action["max_attempts"]) == (True, 1, 3)
    assert action["detail"]["attempts"][0]["seen"] == sim.banner
    assert action["detail"]["boot_pattern"] == sim.banner and action["detail"]["off_s"] == 0.2
    assert sim.switched() == ["off", "on"]


async def test_a_board_that_never_boots_is_marked_failed_with_an_alert(
    client: httpx.AsyncClient, session: AsyncSession, board: dict[str, Any], sim: SimBoard
) -> None:
    # Validates: 18.2, 16.1
    sim.fail_boots = 2
    cycle = f"/api/v1/boards/{board['id']}/power-cycle"
    action = (await client.post(cycle, json={"off_s": 0.2, "boot_timeout_s": 1.5, "retries": 2})).json()
    assert action["status"]["value"] == "failed"
    assert (action["boot_seen"], action["attempts"]) == (False, 2)
    assert "Kernel panic" in action["detail"]["attempts"][-1]["error"]
    assert sim.switched() == ["off", "on", "off", "on"]
    shown = (await client.get(f"/api/v1/boards/{board['id']}")).json()
    assert shown["status"]["value"] == "failed"
    alert = await session.scalar(
        select(Alert).where(Alert.resource_id == board["id"], Alert.kind == "boot-failed")
    )
    assert alert is not None and alert.state == "open"

    again = (await client.post(cycle, json={"off_s": 0.2, "boot_timeout_s": 10})).json()
    assert again["status"]["value"] == "succeeded"
    assert (await client.get(f"/api/v1/boards/{board['id']}")).json()["status"]["value"] == "online"
    await session.refresh(alert)
    assert alert.state == "resolved"


async def test_an_unreachable_power_controller_raises_an_alert(
    client: httpx.AsyncClient, session: AsyncSession, sim: SimBoard
) -> None:
    # Validates: 18.5
    pdu = f"http://127.0.0.1:{free_port()}"
    board = await register(
        client,
        "dead-pdu",
        console_url=f"socket://127.0.0.1:{sim.port}",
        power={"driver": "pdudaemon", "url": pdu, "pdu": "pdu-1", "outlet": 3},
    )
    r = await client.put(f"/api/v1/boards/{board['id']}/power", json={"state": "on"})
    assert r.status_code == 200, r.text
    action = r.json()
    assert action["status"]["value"] == "failed"
    assert pdu in action["error"] and "outlet 3" in action["error"]
    alert = await session.scalar(
        select(Alert).where(Alert.resource_id == board["id"], Alert.kind == "power-controller")
    )
    assert alert is not None and alert.severity == "critical" and alert.state == "open"
    # pdudaemon cannot tell the state, so a read does not reach it and proves nothing: the alert stays.
    state = (await client.get(f"/api/v1/boards/{board['id']}/power")).json()
    assert state["status"]["value"] == "succeeded" and state["power_state"] == "unknown"
    await session.refresh(alert)
    assert alert.state == "open"


async def test_viewers_read_operators_act(
    client: httpx.AsyncClient, as_role: dict[str, dict[str, str]], board: dict[str, Any]
) -> None:
    base = f"/api/v1/boards/{board['id']}"
    viewer = as_role["viewer"]
    assert (await client.get(f"{base}/power", headers=viewer)).status_code == 200
    assert (await client.get(f"{base}/power-actions", headers=viewer)).status_code == 200
    assert (await client.put(f"{base}/power", json={"state": "on"}, headers=viewer)).status_code == 403
    assert (await client.post(f"{base}/power-cycle", headers=viewer)).status_code == 403
    operator = as_role["operator"]
    r = await client.put(f"{base}/power", json={"state": "on"}, headers=operator)
    assert r.status_code == 200 and r.json()["requested_by"] == "t-operator"


async def test_refusals_are_problems(
    client: httpx.AsyncClient, session: AsyncSession, board: dict[str, Any], sim: SimBoard
) -> None:
    base = f"/api/v1/boards/{board['id']}"
    assert (await client.put("/api/v1/boards/999999/power", json={"state": "on"})).status_code == 404
    bad = await client.put(f"{base}/power", json={"state": "sideways"})
    assert bad.status_code == 422 and bad.json()["field"] == "state"
    bad = await client.post(f"{base}/power-cycle", json={"boot_pattern": "(unclosed"})
    assert bad.status_code == 422 and bad.json()["field"] == "boot_pattern"
    assert (await client.get(f"{base}/power-actions/999999")).status_code == 404

    await session.execute(update(Board).where(Board.id == board["id"]).values(status="flashing"))
    await session.commit()
    r = await client.post(f"{base}/power-cycle")
    assert r.status_code == 409 and "being flashed" in r.json()["detail"]
    assert r.headers["content-type"] == "application/problem+json"
    assert sim.switched() == []

    unwired = await register(client, "no-power", console_url=f"socket://127.0.0.1:{sim.port}")
    r = await client.put(f"/api/v1/boards/{unwired['id']}/power", json={"state": "on"})
    assert r.status_code == 409 and r.json()["field"] == "power"
