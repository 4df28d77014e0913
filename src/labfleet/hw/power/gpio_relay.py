"""Power through a relay on a GPIO line, switched by libgpiod's tools on the controller host.

Written for libgpiod 1.6 (Debian 12's ``gpiod``), whose tools take the chip and the
line offset as words::

    gpioset --mode=exit [--active-low] gpiochip0 17=1
    gpioget [--active-low] gpiochip0 18

(libgpiod 2 changed this to ``gpioset -c gpiochip0 17=1`` and holds the line until the
process exits, so it would need a different driver.)

The state is read back only from a separate *sense* line, when the wiring has one:
libgpiod 1.6's ``gpioget`` requests the line it reads as an input, so reading the relay's
own output line would let go of the relay. Without a sense line the state is unknown.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from labfleet.errors import DeviceError, Invalid
from labfleet.hw.commands import CommandRunner, quote
from labfleet.hw.power.protocol import Outlet, PowerState, off_then_on


@dataclass(frozen=True, slots=True, kw_only=True)
class GpioLine:
    chip: str = "gpiochip0"
    """A chip name (``gpiochip0``), number or path (``/dev/gpiochip0``)."""
    line: int
    """The offset of the line that drives the relay."""
    active_low: bool = False
    """The relay is on when the line is low."""
    sense_line: int | None = None
    """An input line on the same chip that reads the relay's state, if wired."""

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9/_.-]+", self.chip):
            raise Invalid("a GPIO chip is a name, number or /dev path", field="chip")
        if self.line < 0:
            raise Invalid("a line offset is 0 or more", field="line")
        if self.sense_line is not None and self.sense_line < 0:
            raise Invalid("a line offset is 0 or more", field="sense_line")


class GpioRelayPower:
    """A relay on one GPIO line, driven through ``runner`` (the GPIO chip's host)."""

    def __init__(self, relay: GpioLine, runner: CommandRunner) -> None:
        self._relay = relay
        self._runner = runner
        self._polarity = ("--active-low",) if relay.active_low else ()
        self._outlet = Outlet(
            f"gpio {runner.where} {relay.chip}",
            str(relay.line),
            f"{runner.where}: GPIO relay {relay.chip} line {relay.line}",
        )

    async def on(self, *, timeout: float) -> None:
        await self._outlet.exclusive(timeout, lambda left: self._set(1, left()))

    async def off(self, *, timeout: float) -> None:
        await self._outlet.exclusive(timeout, lambda left: self._set(0, left()))

    async def cycle(self, delay: float = 2.0, *, timeout: float) -> None:
        await self._outlet.exclusive(
            timeout,
            lambda left: off_then_on(lambda: self._set(0, left()), lambda: self._set(1, left()), delay),
        )

    async def state(self, *, timeout: float) -> PowerState:
        if self._relay.sense_line is None:
            return PowerState.UNKNOWN
        return await self._outlet.exclusive(timeout, lambda left: self._sense(left()))

    async def _set(self, value: int, timeout: float) -> None:
        command = quote(
            "gpioset", "--mode=exit", *self._polarity, self._relay.chip, f"{self._relay.line}={value}"
        )
        await self._runner.run(command, timeout=timeout)

    async def _sense(self, timeout: float) -> PowerState:
        command = quote("gpioget", *self._polarity, self._relay.chip, str(self._relay.sense_line))
        result = await self._runner.run(command, timeout=timeout)
        value = result.stdout.strip()
        if value not in ("0", "1"):
            raise DeviceError(f"{self._outlet.what}: gpioget printed {value[:80]!r}, expected 0 or 1")
        return PowerState.ON if value == "1" else PowerState.OFF
