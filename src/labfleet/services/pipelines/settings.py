"""How pipelines run: their leases, how long they wait for a resource, how many they try."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class PipelineSettings:
    lease_seconds: float = 30.0
    heartbeat_seconds: float = 5.0
    poll_seconds: float = 5.0
    """Also woken at once when a pipeline is queued in this process (or, on PostgreSQL, any)."""
    max_pipelines: int = 32
    resource_wait_s: float = 3600.0
    """How long a deploy waits for a host or board to come free before it fails."""
    resource_retry_s: float = 3.0
    max_resources: int = 3
    """Resources tried in all when provisioning fails on them."""
    environment_hold_s: int = 6 * 3600
    """The expiry of a pipeline's reservation: a safety net, it is released when the pipeline ends."""
