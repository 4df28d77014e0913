"""Two ``labfleet serve`` processes on one database tell the same: the same ``/metrics``
figures (nothing counted in a process's memory) and the same settings once one of them
stored a change, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx

from tests.cli.test_cli_against_server import Server, admin_token
from tests.cli.test_cli_alerts import _raise_one


def _figures(text: str) -> list[str]:
    # Everything but the wait of work still queued, which grows while it is read.
    return sorted(line for line in text.splitlines() if not line.startswith("labfleet_queue_oldest_wait"))


def test_two_processes_scrape_the_same_figures_and_apply_the_same_settings(
    tmp_path: Path, fresh_db_url: str
) -> None:
    with Server(tmp_path / "a", fresh_db_url) as a, Server(tmp_path / "b", fresh_db_url) as b:
        token = admin_token(a)
        auth = {"Authorization": f"Bearer {token}"}
        asyncio.run(_raise_one(fresh_db_url))
        one = httpx.get(f"{a.url}/metrics", headers=auth, timeout=10)
        other = httpx.get(f"{b.url}/metrics", headers=auth, timeout=10)
        assert one.status_code == other.status_code == 200
        assert 'labfleet_alerts_open{resource_kind="host",severity="critical"} 1.0' in one.text
        assert _figures(one.text) == _figures(other.text)

        put = httpx.put(
            f"{a.url}/api/v1/settings",
            json={"check_interval_seconds": {"host": 20}},
            headers=auth,
            timeout=10,
        )
        assert put.status_code == 200, put.text
        seen = httpx.get(f"{b.url}/api/v1/settings", headers=auth, timeout=10).json()
        assert (seen["version"], seen["check_interval_seconds"]["host"]) == (1, 20.0)
        # And the other process's workers have them: its view took the new version, unasked.
        deadline = time.monotonic() + 15
        while "settings version 1 applied" not in b.log.read_text():
            assert time.monotonic() < deadline, b.log.read_text()[-2000:]
            time.sleep(0.1)
