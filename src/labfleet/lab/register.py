"""``lab up --register``: the lab's build server, host and boards, registered through labfleet's REST API.

Registering what is already registered (409) is not an error, so this may run again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from labfleet.errors import Forbidden, LabfleetError, Unauthenticated, Unreachable
from labfleet.lab.layout import (
    BOARDS,
    BUILD_SERVER_NAME,
    BUILD_USER,
    HOST_NAME,
    LOCAL_LIBVIRT_URI,
    LOOPBACK,
    PDU_NAME,
    PDU_URL,
    SSH_PORT,
    Board,
)
from labfleet.lab.paths import LabPaths

LABELS = {"lab": "virtual"}


@dataclass(frozen=True, slots=True)
class Registration:
    collection: str
    name: str
    created: bool  # False: it was registered already


def build_server_body(paths: LabPaths) -> dict[str, Any]:
    return {
        "hostname": BUILD_SERVER_NAME,
        "address": LOOPBACK,
        "ssh": {"port": SSH_PORT, "username": BUILD_USER, "private_key": paths.private_key.read_text()},
        "max_concurrent_builds": 2,
        "description": "Virtual lab: sshd on loopback with gcc and the aarch64 cross compiler.",
        "labels": LABELS,
    }


def host_body(paths: LabPaths) -> dict[str, Any]:
    return {
        "hostname": HOST_NAME,
        "address": LOOPBACK,
        "ssh": {"port": SSH_PORT, "username": "root", "private_key": paths.private_key.read_text()},
        "libvirt_uri": LOCAL_LIBVIRT_URI,
        "description": "Virtual lab: libvirtd with QEMU (TCG only).",
        "labels": LABELS,
    }


def board_body(paths: LabPaths, board: Board) -> dict[str, Any]:
    return {
        "name": board.name,
        "board_type": board.board_type,
        "architecture": board.architecture,
        "serial_number": board.serial_number,
        "console_url": board.console_url,
        "power": {"driver": "pdudaemon", "url": PDU_URL, "pdu": PDU_NAME, "outlet": board.outlet},
        "flash": {
            "driver": "dd",
            "host": LOOPBACK,
            "ssh_port": SSH_PORT,
            "ssh_user": "root",
            "device": str(paths.boot_image(board)),
            "secret": {"private_key": paths.private_key.read_text()},
        },
        "description": f"Virtual lab: QEMU {board.board_type} booting a Debian kernel and a busybox shell.",
        "labels": LABELS,
    }


def _problem(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300] or response.reason_phrase
    detail = str(body.get("detail") or body.get("title") or response.status_code)
    errors = body.get("errors") or []
    fields = "; ".join(f"{e.get('field')}: {e.get('reason')}" for e in errors if isinstance(e, dict))
    return f"{detail} ({fields})" if fields else detail


def register(
    paths: LabPaths,
    *,
    url: str,
    token: str | None,
    timeout: float = 120,
    transport: httpx.BaseTransport | None = None,
) -> list[Registration]:
    """Register every part of the lab; what was created and what was there already."""
    items: list[tuple[str, str, dict[str, Any]]] = [
        ("/build-servers", BUILD_SERVER_NAME, build_server_body(paths)),
        ("/hosts", HOST_NAME, host_body(paths)),
        *(("/boards", b.name, board_body(paths, b)) for b in BOARDS),
    ]
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    done: list[Registration] = []
    base = f"{url.rstrip('/')}/api/v1"
    with httpx.Client(base_url=base, headers=headers, timeout=timeout, transport=transport) as http:
        for collection, name, body in items:
            what = f"registering {name} at {base}{collection}"
            try:
                response = http.post(collection, json=body)
            except httpx.TransportError as exc:
                raise Unreachable(f"{what}: labfleet not reachable ({exc})") from exc
            if response.status_code == httpx.codes.CONFLICT:
                done.append(Registration(collection, name, created=False))
                continue
            if response.status_code == httpx.codes.UNAUTHORIZED:
                raise Unauthenticated(
                    f"{what}: {_problem(response)}; give a token (--token or LABFLEET_TOKEN)"
                )
            if response.status_code == httpx.codes.FORBIDDEN:
                raise Forbidden(f"{what}: {_problem(response)}")
            if response.is_error:
                raise LabfleetError(f"{what}: {response.status_code} {_problem(response)}")
            done.append(Registration(collection, name, created=True))
    return done
