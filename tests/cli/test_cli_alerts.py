"""``labfleet alerts`` against a real ``labfleet serve``, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json

from labfleet.db.engine import create_engine, session_factory
from labfleet.services.core import alerts as raising
from tests.cli.test_cli_against_server import Server, admin_token, cli, data_dir, server

__all__ = ["data_dir", "server"]  # the fixtures, used by name


async def _raise_one(db_url: str) -> int:
    engine = create_engine(db_url)
    try:
        async with session_factory(engine)() as session:
            alert = await raising.raise_alert(
                session=session,
                resource_kind="host",
                resource_id=7,
                kind="unreachable",
                severity="critical",
                message="host kvm-7 did not answer 3 health checks in a row",
            )
            await session.commit()
            return alert.id
    finally:
        await engine.dispose()


def test_list_acknowledge_and_resolve_an_alert(server: Server) -> None:
    token = admin_token(server)
    ident = asyncio.run(_raise_one(server.env["LABFLEET_DATABASE_URL"]))

    code, out = cli(server, "alerts", "list", "--state", "open", token=token)
    assert code == 0, out
    assert "1 alert(s)" in out
    assert "critical" in out

    code, out = cli(server, "alerts", "ack", str(ident), "-m", "rebooting its switch", "--json", token=token)
    assert code == 0, out
    acked = json.loads(out)
    assert (acked["state"], acked["acknowledged_by"], acked["acknowledged_comment"]) == (
        "acknowledged",
        "admin-cli",
        "rebooting its switch",
    )
    code, out = cli(server, "alerts", "ack", str(ident), token=token)
    assert code == 1
    assert "already acknowledged" in " ".join(out.split())

    code, out = cli(server, "alerts", "resolve", str(ident), "--json", token=token)
    assert code == 0, out
    assert json.loads(out)["state"] == "resolved"
    code, out = cli(server, "alerts", "list", "--state", "open", "--json", token=token)
    assert json.loads(out) == {"count": 0, "items": []}
    code, out = cli(server, "alerts", "list", "--severity", "loud", token=token)
    assert code == 2
