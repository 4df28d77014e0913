"""``labfleet notifications`` against a real ``labfleet serve`` (whose worker delivers), on
SQLite and PostgreSQL: a channel from a file, its deliveries and each try."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from tests.cli.test_cli_against_server import Server, admin_token, cli, data_dir, server
from tests.cli.test_cli_alerts import _raise_one
from tests.receivers import Hook

__all__ = ["data_dir", "server"]  # the fixtures, used by name

SECRET = "cli-signing-key-0123"


def test_add_a_webhook_channel_and_follow_what_it_was_sent(server: Server, tmp_path: Path) -> None:
    token = admin_token(server)
    with Hook(SECRET) as hook:
        channel = tmp_path / "ops-hook.json"
        channel.write_text(
            json.dumps(
                {"name": "ops-hook", "target": {"transport": "webhook", "url": hook.url, "secret": SECRET}}
            )
        )
        code, out = cli(server, "notifications", "add", "--from-file", str(channel), "--json", token=token)
        assert code == 0, out
        assert SECRET not in out
        made = json.loads(out)
        code, out = cli(server, "notifications", "list", token=token)
        assert (code, "ops-hook" in out, "webhook" in out) == (0, True, True), out

        alert = asyncio.run(_raise_one(server.env["LABFLEET_DATABASE_URL"]))
        [got] = asyncio.run(hook.wait(1, timeout=30))
        assert got.signed
        deadline = time.monotonic() + 30
        while True:
            code, out = cli(
                server, "notifications", "deliveries", "--channel-id", str(made["id"]), "--json", token=token
            )
            [sent] = json.loads(out)["items"] or [None]
            if (sent and sent["state"] == "delivered") or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    assert sent is not None
    assert (sent["alert_id"], sent["state"], sent["event"]) == (alert, "delivered", "raised")
    assert got.headers["Idempotency-Key"] == sent["idempotency_key"]
    code, out = cli(server, "notifications", "delivery", str(sent["id"]), token=token)
    assert code == 0, out
    assert "1 tr(ies)" in out
    assert "200" in out
    code, out = cli(server, "notifications", "remove", str(made["id"]), "--yes", token=token)
    assert code == 0, out
