"""Switching a board's power: the protocol every power driver implements, and the outlet lock.

A power controller (a PDU, a USB hub, a GPIO chip) must never be asked to do two things
at once for one outlet: every driver runs each operation through ``Outlet.exclusive``,
under a lock keyed by (controller, outlet), so two concurrent calls on one outlet run
one after the other while calls on different outlets run side by side.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, TypeVar, runtime_checkable

from labfleet.errors import Busy, DeviceError
from labfleet.hw.translate import deadline

T = TypeVar("T")
TimeLeft = Callable[[], float]


class PowerState(StrEnum):
    ON = "on"
    OFF = "off"
    UNKNOWN = "unknown"


@runtime_checkable
class PowerProtocol(Protocol):
    """On, off, cycle and (where the hardware can tell) state of one outlet."""

    async def on(self, *, timeout: float) -> None: ...

    async def off(self, *, timeout: float) -> None: ...

    async def cycle(self, delay: float = 2.0, *, timeout: float) -> None:
        """Off, ``delay`` seconds, on."""
        ...

    async def state(self, *, timeout: float) -> PowerState: ...


class StateProbe(Protocol):
    """Reads an outlet's state where the controller itself cannot (pdudaemon)."""

    async def __call__(self, *, timeout: float) -> PowerState: ...


# Locks belong to one event loop; keying them by loop lets several loops (tests, worker
# threads) each have their own without ever sharing one.
_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, str], asyncio.Lock]] = (
    weakref.WeakKeyDictionary()
)


def outlet_lock(controller: str, outlet: str) -> asyncio.Lock:
    """The lock of one outlet of one controller, in the running event loop."""
    per_loop = _locks.setdefault(asyncio.get_running_loop(), {})
    return per_loop.setdefault((controller, outlet), asyncio.Lock())


@dataclass(frozen=True, slots=True)
class Outlet:
    """One outlet of one controller, as the lock knows it, and how errors name it."""

    controller: str
    outlet: str
    what: str

    async def exclusive(self, timeout: float, operation: Callable[[TimeLeft], Awaitable[T]]) -> T:
        """Runs ``operation(left)`` holding this outlet's lock, waiting and working within ``timeout``.

        ``left()`` is the time that remains: the timeout to give each of the operation's
        steps. ``Busy`` when another operation held the outlet all that time, ``Timeout``
        when the operation did not finish.
        """
        loop = asyncio.get_running_loop()
        until = loop.time() + timeout
        lock = outlet_lock(self.controller, self.outlet)
        try:
            async with asyncio.timeout_at(until):
                await lock.acquire()
        except TimeoutError:
            raise Busy(
                f"{self.what}: another operation on this outlet is still running", retry_after=timeout
            ) from None
        try:
            async with deadline(self.what, max(0.0, until - loop.time())) as left:
                return await operation(left)
        finally:
            lock.release()


async def off_then_on(
    off: Callable[[], Awaitable[None]], on: Callable[[], Awaitable[None]], delay: float
) -> None:
    """A cycle for controllers without one of their own: off, wait ``delay`` (the point of it), on."""
    await off()
    await asyncio.sleep(delay)
    await on()


def parse_state(text: str, what: str) -> PowerState:
    """``on``/``off``/``unknown`` (any case, surrounding blanks ignored) as a state."""
    word = text.strip().lower()
    try:
        return PowerState(word)
    except ValueError:
        raise DeviceError(f"{what}: expected on, off or unknown, got {text.strip()[:80]!r}") from None
