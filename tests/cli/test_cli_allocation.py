"""``labfleet reservations create --auto`` against a real ``labfleet serve``, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json

from sqlalchemy import update
from sqlalchemy.ext.asyncio import create_async_engine

from labfleet.db.models import Host
from tests.cli.test_cli_against_server import Server, admin_token, cli, data_dir, server

__all__ = ["data_dir", "server"]  # the fixtures, used by name


def flat(out: str) -> str:
    return " ".join(out.split())


def detected(server: Server, host: int, **facts: object) -> None:
    """What device checks would have found (the server runs without them)."""

    async def write() -> None:
        engine = create_async_engine(server.env["LABFLEET_DATABASE_URL"])
        try:
            async with engine.begin() as conn:
                await conn.execute(update(Host).where(Host.id == host).values(**facts))
        finally:
            await engine.dispose()

    asyncio.run(write())


def add_host(server: Server, token: str, name: str, address: str) -> int:
    code, out = cli(server, "hosts", "add", "--hostname", name, "--address", address, "--ssh-user", "root",
                    "--libvirt-uri", "qemu:///system", "--json", token=token)  # fmt: skip
    assert code == 0, out
    return int(json.loads(out)["id"])


def test_auto_host_is_chosen_explained_and_refused_with_alternatives(server: Server) -> None:
    token = admin_token(server)
    big = add_host(server, token, "kvm-big", "10.9.0.7")
    small = add_host(server, token, "kvm-small", "10.9.0.8")
    machine_types = {"x86_64": ["q35"], "arm64": ["virt"]}
    for host, cores in ((big, 16), (small, 4)):
        detected(server, host, cpu_cores=cores, memory_mb=32768, storage_gb=200.0, kvm=True,
                 native_architecture="x86_64", machine_types=machine_types)  # fmt: skip

    code, out = cli(server, "reservations", "create", "--auto", "host", "--arch", "x86_64",
                    "--vcpus", "2", "--memory-mb", "2048", "--kvm", "--purpose", "boot", "--explain",
                    token=token)  # fmt: skip
    assert code == 0, out
    text = flat(out)
    assert "host kvm-big (#" in text and "chosen" in text
    assert "candidates (best first)" in text
    assert "1. kvm-big" in text and "2. kvm-small" in text
    assert "cpu" in text and "utilization" in text  # the score parts

    code, out = cli(server, "reservations", "create", "--auto", "host", "--arch", "arm64", "--vcpus", "1",
                    "--purpose", "emulated", "--json", token=token)  # fmt: skip
    assert code == 0, out
    made = json.loads(out)
    assert made["auto"] == "host" and made["decision"] is None

    code, out = cli(server, "reservations", "show", str(made["id"]), "--explain", token=token)
    assert code == 0, out
    assert "emulated here (TCG)" in flat(out)

    # Nothing has 16 vCPUs free any more: refused, with what each host lacks.
    code, out = cli(server, "reservations", "create", "--auto", "host", "--arch", "x86_64", "--vcpus", "16",
                    "--purpose", "huge", token=token)  # fmt: skip
    assert code == 1
    text = flat(out)
    assert "error 409: no host can take it now" in text
    assert "alternatives:" in text
    assert "kvm-big (#" in text and "vCPUs free after reservations, needs 16" in text

    # Nothing could ever: 422, naming the field.
    code, out = cli(server, "reservations", "create", "--auto", "host", "--arch", "x86_64", "--vcpus", "64",
                    "--purpose", "too big", token=token)  # fmt: skip
    assert code == 1
    assert "error 422: no host that runs x86_64 is large enough for 64 vCPUs" in flat(out)


def test_auto_board_with_peripherals(server: Server) -> None:
    token = admin_token(server)
    for name, serial, extra in (("rpi-plain", "SN1", []), ("rpi-mux", "SN2", ["--peripheral", "sd-mux"])):
        code, out = cli(server, "boards", "add", "--name", name, "--type", "rpi4", "--arch", "arm64",
                        "--serial", serial, "--console", "socket://c:1", *extra, "--json",
                        token=token)  # fmt: skip
        assert code == 0, out

    args = ("reservations", "create", "--auto", "board", "--arch", "arm64", "--board-type", "rpi4",
            "--peripheral", "sd-mux", "--purpose", "flash test")  # fmt: skip
    code, out = cli(server, *args, token=token)
    assert code == 0, out
    assert "board rpi-mux (#" in flat(out)

    code, out = cli(server, *args, token=token)
    assert code == 1
    text = flat(out)
    assert "error 409: no board can take it now: 1 board(s) match, none is free now" in text
    assert "rpi-mux (#" in text and "held by reservation #" in text

    code, out = cli(server, "reservations", "create", "--auto", "board", "--purpose", "x", token=token)
    assert code == 2 and "--auto needs --arch" in flat(out)
