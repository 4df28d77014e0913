"""The services' and workers' policies, from the one settings home (``labfleet.config``)."""

from __future__ import annotations

from typing import Any

from labfleet.config import Settings
from labfleet.schemas.settings import LabSettings
from labfleet.services.core import lab_settings
from labfleet.services.environments.policy import ProvisionPolicy
from labfleet.services.flashing.service import FlashPolicy
from labfleet.services.notifications.policy import NotificationPolicy
from labfleet.services.pipelines.settings import PipelineSettings
from labfleet.services.power.service import PowerPolicy


def _pattern(value: str | None) -> dict[str, Any]:
    return {} if value is None else {"boot_pattern": value}


def power(s: Settings) -> PowerPolicy:
    return PowerPolicy(
        off_s=s.power_off_seconds,
        boot_timeout_s=s.power_boot_timeout_seconds,
        attempts=s.power_attempts,
        command_timeout_s=s.power_command_timeout_seconds,
        **_pattern(s.power_boot_pattern),
    )


def flash(s: Settings) -> FlashPolicy:
    return FlashPolicy(
        write_timeout_s=s.flash_write_timeout_seconds,
        lease_seconds=s.flash_lease_seconds,
        heartbeat_seconds=s.flash_heartbeat_seconds,
        max_attempts=s.flash_max_attempts,
        boot_timeout_s=s.flash_boot_timeout_seconds,
        **_pattern(s.flash_boot_pattern),
    )


def provision(s: Settings) -> ProvisionPolicy:
    return ProvisionPolicy(
        deploy_dir=s.deploy_dir, console_ports=(s.deploy_console_port_first, s.deploy_console_port_last)
    )


def pipelines(s: Settings) -> PipelineSettings:
    return PipelineSettings(
        lease_seconds=s.pipeline_lease_seconds,
        heartbeat_seconds=s.pipeline_heartbeat_seconds,
        max_pipelines=s.pipeline_max_running,
        resource_wait_s=s.pipeline_resource_wait_seconds,
    )


def notifications(s: Settings) -> NotificationPolicy:
    return NotificationPolicy(
        lease_seconds=s.notify_lease_seconds,
        max_attempts=s.notify_max_attempts,
        backoff_base_seconds=s.notify_backoff_base_seconds,
        backoff_max_seconds=s.notify_backoff_max_seconds,
        timeout_seconds=s.notify_timeout_seconds,
        poll_seconds=s.notify_poll_seconds,
        concurrency=s.notify_concurrency,
    )


def lab_defaults(s: Settings) -> LabSettings:
    """The lab settings this process applies until an admin stores some (``PUT /settings``)."""
    return lab_settings.defaults(
        interval_s=s.health_interval_seconds,
        failure_limit=s.health_failure_limit,
        disk_warning_gb=s.build_disk_warning_gb,
        disk_critical_gb=s.build_disk_critical_gb,
        raw_days=s.utilization_retention_days,
    )
