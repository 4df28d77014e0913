"""SSH endpoints, their credentials and host keys, and one attempt at connecting to one.

A target's ``host_key`` is the only key its server may present (``None``: any, for the
first contact at registration). ``open_connection`` is the pool's default connector: one
attempt, no retries, every asyncssh and OS error translated by ``hw/translate.py``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Protocol

import asyncssh
from asyncssh.public_key import get_default_public_key_algs

from labfleet.errors import HostKeyChanged, Invalid
from labfleet.hw.translate import ssh_errors


# Not cached, unlike public keys: a cache would keep secrets after their target is gone.
def _private_key(text: str) -> asyncssh.SSHKey:
    try:
        return asyncssh.import_private_key(text)
    except (asyncssh.KeyImportError, ValueError) as exc:
        raise Invalid(f"the SSH private key cannot be read ({exc})", field="private_key") from None


@functools.lru_cache(maxsize=1024)
def _public_key(line: str) -> asyncssh.SSHKey:
    try:
        return asyncssh.import_public_key(line)
    except (asyncssh.KeyImportError, ValueError) as exc:
        raise Invalid(f"the SSH host key cannot be read ({exc})", field="host_key") from None


def fingerprint(*, host_key: str) -> str:
    """The SHA-256 fingerprint of an OpenSSH public key line, as ``ssh-keygen -l`` shows it."""
    return _public_key(host_key).get_fingerprint("sha256")


def openssh_line(*, key: asyncssh.SSHKey) -> str:
    """A public key as one OpenSSH line, ``ssh-ed25519 AAAA...``."""
    return key.export_public_key("openssh").decode("ascii").strip()


@dataclass(frozen=True, slots=True, kw_only=True)
class SshTarget:
    """One SSH endpoint and how to log in to it.

    ``host_key`` is the server's public key as an OpenSSH line (``ssh-ed25519 AAAA...``);
    ``None`` trusts the first key the server presents. Secrets are left out of ``repr``.
    """

    host: str
    username: str
    port: int = 22
    private_key: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    host_key: str | None = None

    def __post_init__(self) -> None:
        if not self.host:
            raise Invalid("an SSH target needs a host", field="host")
        if not self.username:
            raise Invalid("an SSH target needs a user name", field="username")
        if not 0 < self.port < 65536:
            raise Invalid(f"SSH port {self.port} is not between 1 and 65535", field="port")
        if self.private_key is None and self.password is None:
            raise Invalid("an SSH target needs a private key or a password", field="private_key")
        # Parsed now so that a bad key fails where it is given, not at the first command.
        if self.private_key is not None:
            _private_key(self.private_key)
        if self.host_key is not None:
            _public_key(self.host_key)

    @property
    def where(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.username}@{host}:{self.port}"


@dataclass(frozen=True, slots=True, kw_only=True)
class SshSettings:
    """How hard the pool tries, and how it notices dead connections."""

    connect_timeout: float = 10.0
    connect_attempts: int = 4
    backoff_initial: float = 0.5
    backoff_max: float = 8.0
    keepalive_interval: float = 15.0
    keepalive_count_max: int = 3
    # OpenSSH refuses an 11th session on one connection (MaxSessions 10); staying below
    # leaves room for the kill command of a timed-out process.
    sessions_per_connection: int = 8


class Connector(Protocol):
    """Opens one SSH connection, or raises a labfleet ``DeviceError``; the pool's seam for tests."""

    async def __call__(
        self, *, target: SshTarget, settings: SshSettings, host_key: str | None
    ) -> asyncssh.SSHClientConnection: ...


class _KeyWitness(asyncssh.SSHClient):
    """Remembers a host key that did not match, so that the refusal can name it."""

    def __init__(self) -> None:
        self.refused: asyncssh.SSHKey | None = None

    def validate_host_public_key(self, host: str, addr: str, port: int, key: asyncssh.SSHKey) -> bool:
        # asyncssh asks only about keys that are not the trusted one.
        self.refused = key
        return False


def _host_key_algorithms(pinned: asyncssh.SSHKey) -> list[str]:
    # asyncssh would offer only the pinned key's algorithms, so a server whose key type
    # changed would fail key exchange ("no matching algorithm") instead of presenting its
    # new key and being refused as changed. The pinned type stays first so that a server
    # holding several keys presents the pinned one.
    algorithms = [a.decode("ascii") for a in pinned.sig_algorithms]
    algorithms += [a.decode("ascii") for a in get_default_public_key_algs()]
    return list(dict.fromkeys(algorithms))


async def open_connection(
    *, target: SshTarget, settings: SshSettings, host_key: str | None
) -> asyncssh.SSHClientConnection:
    """One connection attempt with asyncssh, trusting only ``host_key`` (any key when ``None``)."""
    witness = _KeyWitness()
    pinned = _public_key(host_key) if host_key is not None else None
    known_hosts: tuple[list[asyncssh.SSHKey], list[asyncssh.SSHKey], list[asyncssh.SSHKey]] | None = (
        ([pinned], [], []) if pinned is not None else None
    )
    try:
        with ssh_errors(target.where):
            return await asyncssh.connect(
                target.host,
                target.port,
                username=target.username,
                client_factory=lambda: witness,
                client_keys=[_private_key(target.private_key)] if target.private_key is not None else None,
                password=target.password,
                known_hosts=known_hosts,
                server_host_key_algs=_host_key_algorithms(pinned) if pinned is not None else (),
                # Only what the target says: no ~/.ssh/config, agent or default key files.
                config=None,
                agent_path=None,
                connect_timeout=settings.connect_timeout,
                keepalive_interval=settings.keepalive_interval,
                keepalive_count_max=settings.keepalive_count_max,
            )
    except HostKeyChanged as exc:
        if witness.refused is None or pinned is None:
            raise
        raise HostKeyChanged(
            f"{target.where}: the server presents host key {witness.refused.get_fingerprint('sha256')} "
            f"but {pinned.get_fingerprint('sha256')} was pinned at registration; refusing to connect. "
            "If the machine was reinstalled, update its host key."
        ) from exc.__cause__
