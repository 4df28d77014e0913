"""Valid registration payloads, one per collection, for tests to start from."""

from __future__ import annotations

import itertools
from typing import Any

_counter = itertools.count(1)

TEST_KEY = """-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW
not-a-real-key-but-shaped-like-one
-----END OPENSSH PRIVATE KEY-----"""


def build_server(**overrides: Any) -> dict[str, Any]:
    n = next(_counter)
    data: dict[str, Any] = {
        "hostname": f"build-{n}.lab",
        "address": f"10.1.{n // 250}.{n % 250 + 1}",
        "ssh": {"username": "builder", "port": 22, "private_key": TEST_KEY},
        "max_concurrent_builds": 4,
        "labels": {"rack": "r1", "site": "lab"},
    }
    data.update(overrides)
    return data


def host(**overrides: Any) -> dict[str, Any]:
    n = next(_counter)
    data: dict[str, Any] = {
        "hostname": f"kvm-{n}.lab",
        "address": f"10.2.{n // 250}.{n % 250 + 1}",
        "ssh": {"username": "root", "password": "hunter2-secret"},
        "libvirt_uri": f"qemu+ssh://root@kvm-{n}.lab/system",
        "labels": {"rack": "r2"},
    }
    data.update(overrides)
    return data


def board(**overrides: Any) -> dict[str, Any]:
    n = next(_counter)
    data: dict[str, Any] = {
        "name": f"rpi-{n}",
        "board_type": "rpi4",
        "architecture": "arm64",
        "serial_number": f"SN-{n:06d}",
        "console_url": f"rfc2217://console-1.lab:{7000 + n % 1000}",
        "power": {
            "driver": "pdudaemon",
            "url": "http://pdu-host:16421",
            "pdu": "pdu-1",
            "outlet": n % 24,
            "secret": {"password": "pdu-secret-pw"},
        },
        "peripherals": ["usb-ethernet"],
        "labels": {"rack": "r3"},
    }
    data.update(overrides)
    return data


# (collection path, payload factory, unique fields)
COLLECTIONS = [
    ("build-servers", build_server, ("hostname", "address")),
    ("hosts", host, ("hostname", "address")),
    ("boards", board, ("name", "serial_number")),
]
