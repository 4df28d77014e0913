"""Board power: ``PowerProtocol``, one driver per controller kind, and the registry by name."""

from labfleet.hw.power.command import CommandPower, CommandStateProbe, PowerCommands
from labfleet.hw.power.gpio_relay import GpioLine, GpioRelayPower
from labfleet.hw.power.pdudaemon import PduDaemonOutlet, PduDaemonPower
from labfleet.hw.power.protocol import Outlet, PowerProtocol, PowerState, StateProbe
from labfleet.hw.power.registry import (
    BUILTIN,
    ENTRY_POINT_GROUP,
    PowerDeps,
    PowerDriver,
    build_power,
    with_site_drivers,
)
from labfleet.hw.power.usb_hub import UsbHubPort, UsbHubPower

__all__ = [
    "BUILTIN",
    "ENTRY_POINT_GROUP",
    "CommandPower",
    "CommandStateProbe",
    "GpioLine",
    "GpioRelayPower",
    "Outlet",
    "PduDaemonOutlet",
    "PduDaemonPower",
    "PowerCommands",
    "PowerDeps",
    "PowerDriver",
    "PowerProtocol",
    "PowerState",
    "StateProbe",
    "UsbHubPort",
    "UsbHubPower",
    "build_power",
    "with_site_drivers",
]
