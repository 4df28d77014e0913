"""Errors of asyncssh, libvirt, pyserial and httpx, translated once into labfleet's own.

Each context manager names the thing being reached (``what``), so that the message
says where it failed: ``build-1.lab:22: connection refused``.
"""

from __future__ import annotations

import asyncio
import errno
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager

import asyncssh
import httpx
import serial

from labfleet.errors import AuthFailed, DeviceError, HostKeyChanged, Timeout, Unreachable


def _os_error(what: str, exc: OSError) -> DeviceError:
    if isinstance(exc, socket.gaierror):
        return Unreachable(f"{what}: name not resolved ({exc.strerror or exc})")
    if isinstance(exc, ConnectionRefusedError) or exc.errno == errno.ECONNREFUSED:
        return Unreachable(f"{what}: connection refused")
    if isinstance(exc, TimeoutError):
        return Timeout(f"{what}: timed out")
    if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return Unreachable(f"{what}: no route to host")
    return Unreachable(f"{what}: {exc.strerror or exc}")


def _os_cause(exc: BaseException) -> OSError | None:
    """The operating system's error at the root of a library's error, if there is one.

    Libraries wrap it (anyio: "All connection attempts failed"); the one with an errno
    says what happened (refused, unreachable).
    """
    found: OSError | None = None
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError):
            found = current
            if current.errno is not None:
                return current
        current = current.__cause__ or current.__context__
    return found


@contextmanager
def ssh_errors(what: str) -> Iterator[None]:
    try:
        yield
    except DeviceError:
        raise
    except asyncssh.PermissionDenied as exc:
        raise AuthFailed(f"{what}: authentication failed ({exc.reason})") from exc
    except asyncssh.HostKeyNotVerifiable as exc:
        raise HostKeyChanged(
            f"{what}: the host key is not the one pinned at registration; "
            "if the machine was reinstalled, update its host key"
        ) from exc
    except (asyncssh.DisconnectError, asyncssh.ConnectionLost) as exc:
        raise Unreachable(f"{what}: connection lost ({exc.reason})") from exc
    except asyncssh.ChannelOpenError as exc:
        raise Unreachable(f"{what}: cannot open a channel ({exc.reason})") from exc
    except asyncssh.SFTPError as exc:
        raise DeviceError(f"{what}: file transfer failed ({exc.reason})") from exc
    except TimeoutError as exc:
        raise Timeout(f"{what}: timed out") from exc
    except OSError as exc:
        raise _os_error(what, exc) from exc


@contextmanager
def libvirt_errors(what: str) -> Iterator[None]:
    import libvirt

    try:
        yield
    except DeviceError:
        raise
    except libvirt.libvirtError as exc:
        message = exc.get_error_message() or str(exc)
        code = exc.get_error_code()
        if code in (libvirt.VIR_ERR_AUTH_FAILED, libvirt.VIR_ERR_AUTH_CANCELLED):
            raise AuthFailed(f"{what}: libvirt authentication failed ({message})") from exc
        if code in (libvirt.VIR_ERR_NO_CONNECT, libvirt.VIR_ERR_SYSTEM_ERROR, libvirt.VIR_ERR_RPC):
            raise Unreachable(f"{what}: libvirt not reachable ({message})") from exc
        raise DeviceError(f"{what}: libvirt error ({message})") from exc


@contextmanager
def serial_errors(what: str) -> Iterator[None]:
    try:
        yield
    except DeviceError:
        raise
    except serial.SerialTimeoutException as exc:
        raise Timeout(f"{what}: console timed out") from exc
    except serial.SerialException as exc:
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, OSError):
            raise _os_error(what, cause) from exc
        raise Unreachable(f"{what}: console not reachable ({exc})") from exc
    except OSError as exc:
        raise _os_error(what, exc) from exc


@contextmanager
def http_errors(what: str) -> Iterator[None]:
    try:
        yield
    except DeviceError:
        raise
    except httpx.TimeoutException as exc:
        raise Timeout(f"{what}: timed out") from exc
    except httpx.ConnectError as exc:
        cause = _os_cause(exc)
        if cause is not None:
            raise _os_error(what, cause) from exc
        raise Unreachable(f"{what}: {exc}") from exc
    except httpx.HTTPStatusError as exc:
        response = exc.response
        raise DeviceError(f"{what}: answered {response.status_code} {response.text[:200]}") from exc
    except httpx.TransportError as exc:
        raise Unreachable(f"{what}: {exc}") from exc


# Time a step that timed out on its own gets to clean up (kill its process, close its
# channel) before the whole operation is cancelled.
CLEANUP_GRACE = 1.0


@asynccontextmanager
async def deadline(
    what: str, timeout: float, *, grace: float = CLEANUP_GRACE
) -> AsyncIterator[Callable[[], float]]:
    """Bounds an operation of several steps to ``timeout`` seconds; yields the time left.

    Give each step the time left as its own timeout (``runner.run(..., timeout=left())``):
    a step then times out by itself, cleanly. Should one not, everything is cancelled
    ``grace`` seconds later. Either way the operation raises ``Timeout``.
    """
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout

    def left() -> float:
        return max(0.0, end - loop.time())

    try:
        async with asyncio.timeout_at(end + grace):
            yield left
    except TimeoutError as exc:
        raise Timeout(f"{what}: no answer within {timeout:g} s") from exc
