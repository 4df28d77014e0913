"""The protocol every kind of target follows, and what its steps share."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol

from labfleet.errors import LabfleetError
from labfleet.hw.console import ConsolePort, ConsoleProtocol, SerialConsole
from labfleet.services.environments.policy import ProvisionPolicy

Say = Callable[[str], None]


def quiet(_: str) -> None:
    return None


class ProvisionFailed(LabfleetError):
    """Deploying or booting failed; ``resource_fault``: the target itself failed its health check."""

    def __init__(self, message: str, *, resource: str, resource_fault: bool = False) -> None:
        super().__init__(message)
        self.resource = resource
        self.resource_fault = resource_fault


@dataclass(frozen=True, slots=True)
class Boot:
    """What a booted target prints, and how long it may take to."""

    pattern: str
    timeout_s: float


class Console(ConsoleProtocol, Protocol):
    """A target's console, opened as a context."""

    async def __aenter__(self) -> Any: ...

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> Any: ...


def console_at(
    url: str, policy: ProvisionPolicy, env_id: int, log: Callable[[bytes], None] | None
) -> SerialConsole:
    """The serial console an environment's tests are typed at, not yet open."""
    return SerialConsole(
        ConsolePort(url=url),
        log=log,
        open_timeout=policy.console_open_timeout_s,
        name=f"env #{env_id} console",
    )


class Target(Protocol):
    """One kind of target. Every step takes the environment's id and reads what it needs from
    its row; none holds a transaction open while it reaches the device."""

    async def deploy(self, env_id: int, say: Say) -> None:
        """Put the artifacts on the target; ``ProvisionFailed`` with everything rolled back."""
        ...

    async def boot(self, env_id: int, boot: Boot, say: Say, console_log: Say) -> None:
        """Start it and watch its console for ``boot.pattern``; ``ProvisionFailed`` if it does not come."""
        ...

    async def console(self, env_id: int, log: Callable[[bytes], None] | None = None) -> Console:
        """Its console, not yet open."""
        ...

    async def check(self, env_id: int, say: Say) -> bool:
        """A health check of the host or board, recorded like a periodic one; whether it passed."""
        ...

    async def teardown(self, env_id: int, say: Say) -> None:
        """Remove what was deployed; what cannot be reached is said, not raised. Safe to repeat."""
        ...
