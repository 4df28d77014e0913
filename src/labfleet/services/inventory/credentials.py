"""Sealing write-only credentials with the secret box."""

from __future__ import annotations

from typing import Any

from labfleet.hw.ssh import SshTarget
from labfleet.schemas.ssh import SshIn, SshUpdate
from labfleet.secretbox import SecretBox


def seal(box: SecretBox, **values: str | None) -> str | None:
    """Seal the values that are set; ``None`` when there is nothing to keep."""
    kept = {k: v for k, v in values.items() if v is not None}
    return box.seal(kept) if kept else None


def reseal(box: SecretBox, sealed: str | None, **updates: str | None) -> str | None:
    """Replace the given values in a sealed secret, keeping the others."""
    current: dict[str, Any] = box.open(sealed) if sealed else {}
    current.update({k: v for k, v in updates.items() if v is not None})
    return box.seal(current) if current else None


def ssh_columns(box: SecretBox, ssh: SshIn, *, host_key: str | None) -> dict[str, Any]:
    """The SSH columns of a new machine, its credentials sealed."""
    return {
        "ssh_port": ssh.port,
        "ssh_user": ssh.username,
        "ssh_secret": seal(box, private_key=ssh.private_key, password=ssh.password),
        "ssh_host_key": host_key,
    }


def update_ssh(box: SecretBox, machine: Any, ssh: SshUpdate) -> None:
    """Apply what an update sends of a machine's SSH access, keeping the rest."""
    machine.ssh_port = ssh.port or machine.ssh_port
    machine.ssh_user = ssh.username or machine.ssh_user
    machine.ssh_secret = reseal(box, machine.ssh_secret, private_key=ssh.private_key, password=ssh.password)


def replaced(**parts: Any) -> list[str]:
    """The parts of an update (``ssh=``, ``power=``, ``flash=``) whose credentials it replaces:
    those that carry a password, a key or a secret."""
    return sorted(
        name
        for name, part in parts.items()
        if any(getattr(part, field, None) is not None for field in ("password", "private_key", "secret"))
    )


def ssh_target(box: SecretBox, machine: Any, *, address: str | None = None) -> SshTarget:
    """How to log in to a stored machine: its sealed credentials opened, its host key pinned."""
    secret: dict[str, Any] = box.open(machine.ssh_secret) if machine.ssh_secret else {}
    return SshTarget(
        host=address or machine.address,
        port=machine.ssh_port,
        username=machine.ssh_user,
        private_key=secret.get("private_key"),
        password=secret.get("password"),
        host_key=machine.ssh_host_key,
    )
