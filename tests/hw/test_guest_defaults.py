"""A guest's defaults (its console, its root disk) and the ports a host listens on, read from
what ``ss`` prints."""

from __future__ import annotations

import socket

from labfleet.hw.commands import LocalRunner
from labfleet.hw.probe import listening_ports, parse_listening
from labfleet.hw.qemu import kernel_cmdline


def test_the_console_goes_on_the_machines_serial_device_unless_the_request_names_one() -> None:
    assert kernel_cmdline("x86_64", "", root_disk=False) == "console=ttyS0"
    assert kernel_cmdline("arm64", "quiet", root_disk=False) == "console=ttyAMA0 quiet"
    assert kernel_cmdline("arm64", "console=hvc0", root_disk=False) == "console=hvc0"
    assert kernel_cmdline("s390x", "quiet", root_disk=False) == "quiet"  # no default console known


def test_a_guest_booted_from_a_disk_finds_its_root_there_unless_told_otherwise() -> None:
    assert kernel_cmdline("x86_64", "", root_disk=True) == "console=ttyS0 root=/dev/vda rw"
    assert kernel_cmdline("x86_64", "root=/dev/vdb1", root_disk=True) == "console=ttyS0 root=/dev/vdb1"


def test_listening_ports_are_read_from_ss_output() -> None:
    out = (
        "LISTEN 0      128          0.0.0.0:22         0.0.0.0:*\n"
        "LISTEN 0      4096       127.0.0.1:24101      0.0.0.0:*\n"
        "LISTEN 0      128             [::]:22            [::]:*\n"
        "LISTEN 0      511                *:80               *:*\n"
        "garbage\n"
    )
    assert parse_listening(out) == {22, 24101, 80}


async def test_the_ports_this_machine_listens_on_include_a_socket_opened_here() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert port in await listening_ports(LocalRunner(), timeout=10)
