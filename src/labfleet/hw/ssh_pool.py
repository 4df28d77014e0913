"""The pool that keeps one live SSH connection to each endpoint.

Every command, stream and file transfer sent to a machine shares one SSH connection,
re-established when it drops, with keepalive so that a dead peer is noticed without
waiting for TCP. Connecting retries with exponential backoff, a bounded number of
times; refused credentials and a changed host key are never retried, since trying
again cannot fix them.

Host keys are pinned. At registration a target has no host key yet: the first
connection accepts whatever key the server presents (trust on first use),
``SshPool.host_key`` returns it in OpenSSH format for the caller to store, and later
connections of the pool to that target only accept that key. A target built with the
stored key trusts that key alone, and a server presenting any other is refused with
``HostKeyChanged`` naming both fingerprints.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TypeVar

import asyncssh

from labfleet.errors import AuthFailed, DeviceError, HostKeyChanged, Timeout, Unreachable
from labfleet.hw.ssh_target import Connector, SshSettings, SshTarget, open_connection, openssh_line
from labfleet.hw.translate import ssh_errors

log = logging.getLogger(__name__)

T = TypeVar("T")

_NO_SUCH_NAME = {socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)}


def _worth_retrying(exc: DeviceError) -> bool:
    if isinstance(exc, AuthFailed | HostKeyChanged):
        return False
    cause = exc.__cause__
    # A name that does not exist will not exist in a second either; a DNS server that
    # did not answer (EAI_AGAIN) might.
    return not (isinstance(cause, socket.gaierror) and cause.errno in _NO_SUCH_NAME)


def _after_attempts(exc: DeviceError, attempts: int) -> DeviceError:
    if type(exc) in (Unreachable, Timeout) and attempts > 1:
        again = type(exc)(f"{exc.message} (after {attempts} attempts)")
        again.__cause__ = exc.__cause__
        return again
    return exc


@dataclass(eq=False)
class _Endpoint:
    sessions: asyncio.Semaphore
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    conn: asyncssh.SSHClientConnection | None = None
    learned_key: str | None = None
    # Connection rounds finished, and how the last one failed: callers that queued up
    # behind a failing round share its outcome instead of each retrying in turn.
    rounds: int = 0
    last_error: DeviceError | None = None

    def live(self) -> asyncssh.SSHClientConnection | None:
        return self.conn if self.conn is not None and not self.conn.is_closed() else None


class SshPool:
    """One shared SSH connection per target, opened on first use and re-opened when it drops.

    Targets are compared whole, so one endpoint reached with other credentials or another
    pinned key gets a connection of its own. Close the pool (``await pool.close()`` or
    ``async with SshPool() as pool``) to close every connection.
    """

    def __init__(
        self, *, settings: SshSettings | None = None, connector: Connector = open_connection
    ) -> None:
        self.settings = settings or SshSettings()
        self._connector = connector
        self._endpoints: dict[SshTarget, _Endpoint] = {}
        self._closed = False

    async def __aenter__(self) -> SshPool:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def _endpoint(self, target: SshTarget) -> _Endpoint:
        endpoint = self._endpoints.get(target)
        if endpoint is None:
            endpoint = _Endpoint(asyncio.Semaphore(self.settings.sessions_per_connection))
            self._endpoints[target] = endpoint
        return endpoint

    async def connection(self, target: SshTarget) -> asyncssh.SSHClientConnection:
        """The live connection to ``target``, connecting (with retries) when there is none."""
        endpoint = self._endpoint(target)
        conn = endpoint.live()
        if conn is not None:
            return conn
        round_seen = endpoint.rounds
        async with endpoint.lock:
            # Whoever held the lock before may have connected already, or failed to.
            conn = endpoint.live()
            if conn is not None:
                return conn
            if self._closed:
                raise DeviceError(f"{target.where}: the SSH pool is closed")
            failed = endpoint.last_error
            if endpoint.rounds != round_seen and failed is not None:
                raise type(failed)(failed.message) from failed
            pinned = target.host_key or endpoint.learned_key
            endpoint.last_error = None
            try:
                conn = await self._connect(target, pinned)
            except DeviceError as exc:
                endpoint.last_error = exc
                raise
            finally:
                endpoint.rounds += 1
            if self._closed:
                await _close(conn, self.settings.connect_timeout)
                raise DeviceError(f"{target.where}: the SSH pool was closed while connecting")
            if pinned is None:
                server_key = conn.get_server_host_key()
                endpoint.learned_key = openssh_line(key=server_key) if server_key is not None else None
            endpoint.conn = conn
            return conn

    async def _connect(self, target: SshTarget, host_key: str | None) -> asyncssh.SSHClientConnection:
        delay = self.settings.backoff_initial
        attempts = max(1, self.settings.connect_attempts)
        attempt = 1
        while True:
            try:
                return await self._connector(target=target, settings=self.settings, host_key=host_key)
            except DeviceError as exc:
                if attempt >= attempts or not _worth_retrying(exc):
                    raise _after_attempts(exc, attempt) from exc.__cause__
                log.info("%s (attempt %d of %d; again in %.1f s)", exc.message, attempt, attempts, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.settings.backoff_max)
            attempt += 1

    async def host_key(self, target: SshTarget, *, timeout: float) -> str:
        """The host key of ``target`` as an OpenSSH line: the one to store at registration.

        For a target without a pinned key this is the key its server presented on first
        contact (trust on first use); for a pinned target it is the pinned key, verified.
        """
        try:
            async with asyncio.timeout(timeout):
                conn = await self.connection(target)
        except TimeoutError:
            raise Timeout(f"{target.where}: no SSH connection within {timeout:g} s") from None
        key = conn.get_server_host_key()
        if key is None:
            raise DeviceError(f"{target.where}: the server presented no host key")
        return openssh_line(key=key)

    @asynccontextmanager
    async def session(self, target: SshTarget) -> AsyncIterator[None]:
        """Holds one of the target's session slots, so that the server's session limit is kept.

        Connects first: callers queued for a slot of a machine that is down learn it at once.
        """
        await self.connection(target)
        async with self._endpoint(target).sessions:
            yield

    async def open_channel(
        self, target: SshTarget, opener: Callable[[asyncssh.SSHClientConnection], Awaitable[T]]
    ) -> T:
        """``opener(connection)``; on a fresh connection once more when the pooled one had died.

        Opening a channel runs nothing on the server yet, so repeating it is safe; a
        failure after the channel is open is not retried here.
        """
        endpoint = self._endpoint(target)
        retried = False
        while True:
            conn = await self.connection(target)
            try:
                with ssh_errors(target.where):
                    return await opener(conn)
            except Unreachable:
                if retried or not conn.is_closed():
                    raise
            log.info("%s: the pooled SSH connection had dropped; reconnecting", target.where)
            if endpoint.conn is conn:
                endpoint.conn = None
            retried = True

    async def discard(self, target: SshTarget) -> None:
        """Closes the connection to ``target``, if any; the next use reconnects."""
        endpoint = self._endpoints.get(target)
        if endpoint is not None and endpoint.conn is not None:
            conn, endpoint.conn = endpoint.conn, None
            await _close(conn, self.settings.connect_timeout)

    async def close(self) -> None:
        """Closes every connection; the pool accepts no new ones afterwards."""
        self._closed = True
        conns = [e.conn for e in self._endpoints.values() if e.conn is not None]
        for endpoint in self._endpoints.values():
            endpoint.conn = None
        await asyncio.gather(*(_close(c, self.settings.connect_timeout) for c in conns))


async def _close(conn: asyncssh.SSHClientConnection, timeout: float) -> None:
    conn.close()
    try:
        async with asyncio.timeout(timeout):
            await conn.wait_closed()
    except TimeoutError:
        conn.abort()
