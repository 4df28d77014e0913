"""``labfleet settings`` against a real ``labfleet serve``, on SQLite and PostgreSQL."""

from __future__ import annotations

import json

from tests.cli.test_cli_against_server import Server, admin_token, cli, data_dir, server

__all__ = ["data_dir", "server"]  # the fixtures, used by name


def test_get_and_set_settings_keeping_the_others(server: Server) -> None:
    token = admin_token(server)
    code, out = cli(server, "settings", "get", token=token)
    assert code == 0, out
    assert "settings version 0, the defaults" in " ".join(out.split())
    assert "thresholds.host.failure_limit" in out

    code, out = cli(
        server,
        "settings",
        "set",
        "thresholds.host.failure_limit=5",
        "check_interval_seconds.board=30",
        "--json",
        token=token,
    )
    assert code == 0, out
    now = json.loads(out)
    assert (now["version"], now["thresholds"]["host"]["failure_limit"]) == (1, 5)
    assert now["check_interval_seconds"] == {"build_server": 60.0, "host": 60.0, "board": 30.0}

    code, out = cli(server, "settings", "set", "thresholds.board.failure_limit=0", token=token)
    assert code == 1
    assert "thresholds.board.failure_limit" in out
    code, out = cli(server, "settings", "get", "--json", token=token)
    assert json.loads(out)["version"] == 1


def test_health_show_and_capacity_of_a_host(server: Server) -> None:
    token = admin_token(server)
    code, out = cli(
        server,
        "hosts",
        "add",
        "--hostname",
        "kvm-3",
        "--address",
        "10.3.0.3",
        "--ssh-user",
        "root",
        "--libvirt-uri",
        "qemu+ssh://root@10.3.0.3/system",
        "--json",
        token=token,
    )
    assert code == 0, out
    ident = json.loads(out)["id"]
    code, out = cli(server, "health", "show", "host", str(ident), "--json", token=token)
    assert code == 0, out
    shown = json.loads(out)
    assert (shown["name"], shown["checked_at"], shown["thresholds"]) == ("kvm-3", None, {"failure_limit": 3})
    code, out = cli(server, "health", "capacity", "host", str(ident), token=token)
    assert code == 0, out
    assert "takes_new_work" in out
    code, out = cli(server, "health", "show", "host", "999999", token=token)
    assert code == 1
