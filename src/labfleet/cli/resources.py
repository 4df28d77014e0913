"""``build-servers``, ``hosts`` and ``boards``: the shared commands plus an ``add`` each."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from labfleet.cli import flash, pairs, power
from labfleet.cli.inventory import JsonFlag, collection_app, load_file, post

FromFile = Annotated[Path | None, typer.Option(help="JSON object with the fields; options override it.")]
Labels = Annotated[list[str] | None, typer.Option("--label", help="key=value; repeat for more.")]
Description = Annotated[str | None, typer.Option(help="Free text.")]
SshUser = Annotated[str | None, typer.Option(help="SSH user name.")]
SshPort = Annotated[int | None, typer.Option(help="SSH port.")]
SshKey = Annotated[
    Path | None, typer.Option(help="File with the SSH private key.", exists=True, dir_okay=False)
]
SshPassword = Annotated[
    str | None, typer.Option(help="SSH password (or LABFLEET_SSH_PASSWORD).", envvar="LABFLEET_SSH_PASSWORD")
]


def _drop_none(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if v is not None and v != {}}


def _ssh(user: str | None, port: int | None, key: Path | None, password: str | None = None) -> dict[str, Any]:
    return _drop_none(
        {
            "username": user,
            "port": port,
            "private_key": key.read_text() if key else None,
            "password": password,
        }
    )


def _machine(
    hostname: str | None, address: str | None, ssh: dict[str, Any], description: str | None, **kind: Any
) -> dict[str, Any]:
    """The fields a build server and a QEMU host share, and those of ``kind``."""
    return {"hostname": hostname, "address": address, "ssh": ssh, "description": description, **kind}


def _body(from_file: Path | None, fields: dict[str, Any], labels: list[str] | None) -> dict[str, Any]:
    body = pairs.merge(load_file(from_file), _drop_none(fields))
    if labels:
        body["labels"] = pairs.parse(labels, option="--label", raw=True)
    return body


build_servers = collection_app(
    path="/build-servers",
    noun="build server",
    columns=("id", "hostname", "address", "status", "max_concurrent_builds", "labels"),
)
hosts = collection_app(
    path="/hosts",
    noun="host",
    columns=("id", "hostname", "address", "libvirt_uri", "status", "kvm", "labels"),
)
boards = collection_app(
    path="/boards",
    noun="board",
    columns=("id", "name", "board_type", "architecture", "status", "console_url", "labels"),
)
boards.add_typer(power.app, name="power")
boards.command("flash")(flash.flash_board)


@build_servers.command("add")
def add_build_server(
    ctx: typer.Context,
    hostname: Annotated[str | None, typer.Option(help="Unique name of the server.")] = None,
    address: Annotated[str | None, typer.Option(help="Address to reach it at.")] = None,
    ssh_user: SshUser = None,
    ssh_port: SshPort = None,
    ssh_key: SshKey = None,
    ssh_password: SshPassword = None,
    max_builds: Annotated[int | None, typer.Option(help="Builds it may run at once.")] = None,
    description: Description = None,
    label: Labels = None,
    from_file: FromFile = None,
    as_json: JsonFlag = False,
) -> None:
    """Register a build server."""
    fields = _machine(
        hostname,
        address,
        _ssh(ssh_user, ssh_port, ssh_key, ssh_password),
        description,
        max_concurrent_builds=max_builds,
    )
    post(ctx, "/build-servers", _body(from_file, fields, label), as_json)


@hosts.command("add")
def add_host(
    ctx: typer.Context,
    hostname: Annotated[str | None, typer.Option(help="Unique name of the host.")] = None,
    address: Annotated[str | None, typer.Option(help="Address to reach it at.")] = None,
    libvirt_uri: Annotated[str | None, typer.Option(help="e.g. qemu+ssh://root@host/system")] = None,
    ssh_user: SshUser = None,
    ssh_port: SshPort = None,
    ssh_key: SshKey = None,
    ssh_password: SshPassword = None,
    threshold: Annotated[
        int | None, typer.Option(help="Utilization % above which it takes no new VMs.")
    ] = None,
    description: Description = None,
    label: Labels = None,
    from_file: FromFile = None,
    as_json: JsonFlag = False,
) -> None:
    """Register a QEMU host."""
    ssh = _ssh(ssh_user, ssh_port, ssh_key, ssh_password)
    kind = {"libvirt_uri": libvirt_uri, "utilization_threshold_pct": threshold}
    fields = _machine(hostname, address, ssh, description, **kind)
    post(ctx, "/hosts", _body(from_file, fields, label), as_json)


@boards.command("add")
def add_board(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Option(help="Unique name of the board.")] = None,
    board_type: Annotated[str | None, typer.Option("--type", help="Board type, e.g. rpi4.")] = None,
    arch: Annotated[str | None, typer.Option(help="Architecture, e.g. arm64.")] = None,
    serial: Annotated[str | None, typer.Option(help="Serial number (unique).")] = None,
    console: Annotated[str | None, typer.Option(help="/dev/ttyUSB0, socket://h:p or rfc2217://h:p")] = None,
    ssh_address: Annotated[str | None, typer.Option(help="Address of the board's own sshd.")] = None,
    ssh_user: SshUser = None,
    ssh_port: SshPort = None,
    ssh_key: SshKey = None,
    power: Annotated[
        list[str] | None,
        typer.Option(help="key=value of the power wiring: driver=pdudaemon url=... pdu=... outlet=1"),
    ] = None,
    flash: Annotated[
        list[str] | None, typer.Option(help="key=value of the flash wiring: driver=dd host=... device=...")
    ] = None,
    peripheral: Annotated[
        list[str] | None, typer.Option(help="A peripheral wired to it; repeat for more.")
    ] = None,
    firmware: Annotated[str | None, typer.Option(help="Firmware version running now.")] = None,
    description: Description = None,
    label: Labels = None,
    from_file: FromFile = None,
    as_json: JsonFlag = False,
) -> None:
    """Register a board."""
    ssh = _ssh(ssh_user, ssh_port, ssh_key)
    if ssh_address:
        ssh["address"] = ssh_address
    fields = {
        "name": name,
        "board_type": board_type,
        "architecture": arch,
        "serial_number": serial,
        "console_url": console,
        "ssh": ssh,
        "power": pairs.parse(power, option="--power") if power else None,
        "flash": pairs.parse(flash, option="--flash") if flash else None,
        "peripherals": peripheral,
        "firmware_version": firmware,
        "description": description,
    }
    post(ctx, "/boards", _body(from_file, fields, label), as_json)
