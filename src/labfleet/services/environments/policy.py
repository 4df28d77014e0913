"""How environments are provisioned: where files go, which ports consoles use, how long steps may take."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class ProvisionPolicy:
    deploy_dir: str = "/var/lib/libvirt/images/labfleet"
    """Where a host keeps deployed artifacts, one directory per environment (QEMU must read it)."""
    console_ports: tuple[int, int] = (24100, 24899)
    """The TCP ports a host's VM consoles listen on, one per environment."""
    transfer_timeout_s: float = 900.0
    libvirt_timeout_s: float = 60.0
    console_open_timeout_s: float = 20.0
    flash_timeout_s: float = 3600.0
    poll_s: float = 0.5
    check_timeout_s: float = 20.0
