"""A real pdudaemon (from PyPI, in the venv), started in a temporary directory and stopped afterwards.

Its one PDU uses pdudaemon's ``localcmdline`` driver, whose on and off commands write the
outlet's state to a file (``outlet-<n>``), so a test sees what the "PDU" did.
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.helpers import free_port
from tests.hw.daemons_console import start, stop, wait_until

PDUDAEMON = Path(sys.executable).parent / "pdudaemon"


@dataclass(frozen=True)
class LocalPdu:
    url: str
    pdu: str
    outlets: Path
    """Where ``outlet-<n>`` files hold each outlet's last state."""

    def state_of(self, outlet: int) -> str | None:
        path = self.outlets / f"outlet-{outlet}"
        return path.read_text().strip() if path.exists() else None


def answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=0.5)
    except urllib.error.HTTPError:
        return True  # any HTTP answer means it listens
    except OSError:
        return False
    return True


@contextmanager
def pdudaemon(workdir: Path) -> Iterator[LocalPdu]:
    outlets = workdir / "outlets"
    outlets.mkdir()
    port = free_port()
    config = workdir / "pdudaemon.conf"
    config.write_text(
        json.dumps(
            {
                "daemon": {
                    "hostname": "127.0.0.1",
                    "port": port,
                    "listener": "http",
                    "logging_level": "DEBUG",
                },
                "pdus": {
                    "lab-pdu": {
                        "driver": "localcmdline",
                        "cmd_on": f"echo on > {outlets}/outlet-%s",
                        "cmd_off": f"echo off > {outlets}/outlet-%s",
                    }
                },
            }
        )
    )
    log = workdir / "pdudaemon.log"
    proc = start([str(PDUDAEMON), "--conf", str(config), "--logfile", str(log)], workdir / "pdudaemon.out")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: answers(url), "pdudaemon", proc, workdir / "pdudaemon.out")
        yield LocalPdu(url=url, pdu="lab-pdu", outlets=outlets)
    finally:
        stop(proc)
