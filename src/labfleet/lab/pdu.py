"""Power: a real pdudaemon with one PDU, ``lab-pdu``, whose outlets run the lab's power script.

pdudaemon's configuration is JSON: a ``daemon`` section (listener ``http`` on a host
and port) and ``pdus`` by name. The ``localcmdline`` driver formats ``cmd_on`` /
``cmd_off`` with the outlet number (``%s``) and runs the result with a shell.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Any

import httpx

from labfleet.errors import DeviceError, LabfleetError, Timeout, Unreachable
from labfleet.lab.layout import LOOPBACK, PDU_NAME, PDU_PORT, PDU_URL
from labfleet.lab.paths import LabPaths
from labfleet.lab.procs import Daemon, listening, running_pid, start_background, tail, wait_until


def daemon(paths: LabPaths) -> Daemon:
    return Daemon("pdudaemon", paths.runtime("pdudaemon.pid"), marker=str(paths.runtime("pdudaemon.conf")))


def program() -> Path:
    # Installed with labfleet's `lab` extra, next to the interpreter running labfleet.
    program = Path(sys.executable).parent / "pdudaemon"
    if not program.exists():
        raise LabfleetError(
            f"virtual lab: pdudaemon is not installed next to {sys.executable}; "
            "install labfleet with its `lab` extra (scripts/setup does)"
        )
    return program


def power_command(paths: LabPaths, action: str) -> str:
    """The shell command pdudaemon runs for an outlet; ``%s`` is where it puts the outlet number."""
    env = " ".join(shlex.quote(f"{k}={v}") for k, v in paths.env().items())
    fixed = f"env {env} {shlex.quote(sys.executable)} -m labfleet.lab.power"
    # The command is %-formatted by pdudaemon: a literal % in a path must be doubled.
    return f"{fixed.replace('%', '%%')} %s {action}"


def config(paths: LabPaths) -> dict[str, Any]:
    return {
        "daemon": {"hostname": LOOPBACK, "port": PDU_PORT, "listener": "http", "logging_level": "INFO"},
        "pdus": {
            PDU_NAME: {
                "driver": "localcmdline",
                "cmd_on": power_command(paths, "on"),
                "cmd_off": power_command(paths, "off"),
                # The power script does not fail in ways that retrying would mend.
                "retries": 1,
            }
        },
    }


def is_up(paths: LabPaths) -> bool:
    return running_pid(daemon(paths)) is not None and listening(PDU_PORT)


def start(paths: LabPaths, *, timeout: float = 30) -> bool:
    """pdudaemon listening on the lab's port; whether it was started."""
    if is_up(paths):
        return False
    me = daemon(paths)
    conf = paths.runtime("pdudaemon.conf")
    conf.write_text(json.dumps(config(paths), indent=2) + "\n")
    log = paths.runtime("pdudaemon.log")
    start_background(me, [program(), "--conf", conf, "--loglevel", "INFO"], log=log)

    def ready() -> bool:
        if running_pid(me) is None:
            raise LabfleetError("pdudaemon: exited while starting\n" + tail(log))
        return listening(PDU_PORT)

    wait_until(ready, timeout=timeout, what=f"pdudaemon on {PDU_URL}", hint=lambda: tail(log))
    return True


def request(action: str, outlet: int, *, timeout: float = 60) -> None:
    """Ask the lab's pdudaemon to switch an outlet, as any labfleet would (HTTP GET)."""
    url = f"{PDU_URL}/power/control/{action}"
    what = f"pdudaemon {PDU_URL} ({PDU_NAME} outlet {outlet} {action})"
    try:
        response = httpx.get(url, params={"hostname": PDU_NAME, "port": outlet}, timeout=timeout)
    except httpx.TimeoutException as exc:
        raise Timeout(f"{what}: timed out") from exc
    except httpx.TransportError as exc:
        raise Unreachable(f"{what}: {exc}") from exc
    if response.status_code != httpx.codes.OK:
        raise DeviceError(f"{what}: answered {response.status_code} {response.text.strip()[:200]}")
