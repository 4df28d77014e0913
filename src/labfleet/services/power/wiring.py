"""What power and flash access share to reach a board's controllers from its stored wiring.

A board's power and flash wiring each name a driver, its parameters and a sealed secret.
Drivers that run a tool on a controller name its ``host`` (with ``ssh_port`` and
``ssh_user``); the secret's ``private_key`` or ``password`` log in there. Used by
``power_access`` and ``flash_access``.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Mapping
from typing import Any, TypeVar

from labfleet.errors import Conflict, LabfleetError
from labfleet.hw.ssh import SshPool, SshRunner, SshTarget
from labfleet.secretbox import SecretBox

W = TypeVar("W")


def copied_off(cls: type[W], board: object) -> W:
    """A wiring dataclass filled from a board's row: ``board_id`` from its id, every other
    field from the column of its name, parameter mappings copied so the row may go."""
    values: dict[str, Any] = {}
    for item in dataclasses.fields(cls):  # type: ignore[arg-type]
        value = getattr(board, "id" if item.name == "board_id" else item.name)
        values[item.name] = dict(value or {}) if item.name.endswith("_params") else value
    return cls(**values)


def open_secret(secrets: SecretBox, sealed: str | None) -> Mapping[str, Any]:
    """A wiring's secret, opened; empty when it has none."""
    return secrets.open(sealed) if sealed else {}


def controller_runner(
    pool: SshPool, params: Mapping[str, Any], secret: Mapping[str, Any]
) -> SshRunner | None:
    """An SSH runner to the controller host the parameters name; None when they name none
    (site commands without a host run on the labfleet host)."""
    host = params.get("host")
    if not host:
        return None
    target = SshTarget(
        host=str(host),
        port=int(params.get("ssh_port", 22)),
        username=str(params.get("ssh_user", "root")),
        private_key=secret.get("private_key"),
        password=secret.get("password"),
    )
    return SshRunner(pool=pool, target=target)


def unconfigured(name: str, what: str, field: str) -> Conflict:
    """The ``Conflict`` of a board with no driver for ``what`` (``power control``, ``flash station``)."""
    return Conflict(f"board {name} has no {what} configured", field=field)


@contextlib.contextmanager
def usable_wiring(name: str, field: str, driver: str) -> Iterator[None]:
    """Turn a ``LabfleetError`` met while making a board's ``field`` driver into a ``Conflict``."""
    try:
        yield
    except LabfleetError as exc:
        raise Conflict(
            f"board {name}: its {field} wiring ({driver}) cannot be used: {exc.message}",
            field=field,
        ) from exc
