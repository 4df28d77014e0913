"""``labfleet reservations`` against a real ``labfleet serve``, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.test_cli_against_server import Server, admin_token, cli, data_dir, server

__all__ = ["data_dir", "server"]  # the fixtures, used by name


def test_reserve_a_board_list_it_and_release_it(server: Server, tmp_path: Path) -> None:
    token = admin_token(server)
    code, out = cli(server, "boards", "add", "--name", "rpi-1", "--type", "rpi4", "--arch", "arm64",
                    "--serial", "SN1", "--console", "socket://c:1", "--json", token=token)  # fmt: skip
    assert code == 0, out
    board = json.loads(out)["id"]

    code, out = cli(server, "reservations", "create", "--board", str(board), "--purpose", "bisect",
                    "--expires-in", "600", "--json", token=token)  # fmt: skip
    assert code == 0, out
    held = json.loads(out)
    assert (held["board_id"], held["owner"], held["active"]) == (board, "admin-cli", True)

    code, out = cli(server, "reservations", "create", "--board", str(board), "--purpose", "ci", token=token)
    assert code == 1
    assert f"board rpi-1 is held by reservation #{held['id']} (admin-cli, 'bisect')" in " ".join(out.split())

    code, out = cli(server, "reservations", "list", token=token)
    assert code == 0
    assert "bisect" in out
    assert "1 reservation(s)" in out

    code, out = cli(
        server, "reservations", "extend", str(held["id"]), "--expires-in", "7200", "--json", token=token
    )
    assert code == 0, out
    assert json.loads(out)["expires_at"] > held["expires_at"]

    code, out = cli(server, "reservations", "release", str(held["id"]), "--json", token=token)
    assert code == 0, out
    assert json.loads(out)["release_reason"] == "released by admin-cli"
    code, out = cli(server, "reservations", "list", "--all", "--json", token=token)
    assert [r["active"] for r in json.loads(out)["items"]] == [False]

    # A host registered without device checks has no known capacity: nothing can be promised.
    code, out = cli(server, "hosts", "add", "--hostname", "kvm-1", "--address", "10.9.0.7",
                    "--ssh-user", "root", "--libvirt-uri", "qemu:///system", "--json",
                    token=token)  # fmt: skip
    assert code == 0, out
    host = json.loads(out)["id"]
    code, out = cli(server, "reservations", "create", "--host", str(host), "--vcpus", "2", "--purpose", "vm",
                    token=token)  # fmt: skip
    assert code == 1
    assert "its vCPUs capacity is unknown" in " ".join(out.split())
    code, out = cli(server, "reservations", "create", "--purpose", "nothing", token=token)
    assert code == 1
    assert "host_id or board_id" in " ".join(out.split())
