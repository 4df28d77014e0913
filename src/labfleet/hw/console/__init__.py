"""Serial consoles: ``ConsoleProtocol`` and what it answers (``protocol``), and
``SerialConsole`` on pyserial URLs (``serial_console``)."""

from labfleet.hw.console.protocol import ConsoleMatch, ConsolePort, ConsoleProtocol, ConsoleResult
from labfleet.hw.console.serial_console import LogSink, SerialConsole

__all__ = [
    "ConsoleMatch",
    "ConsolePort",
    "ConsoleProtocol",
    "ConsoleResult",
    "LogSink",
    "SerialConsole",
]
