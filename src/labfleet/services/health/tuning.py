"""The lab settings as each check applies them: a resource's interval and its own thresholds
(its kind's, under its override), over the process's base policies."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta

from labfleet.schemas.enums import ResourceKind
from labfleet.schemas.settings import LabSettings
from labfleet.selection import Thresholds
from labfleet.services.health.boards import BoardHealthPolicy
from labfleet.services.health.build_servers import HealthPolicy
from labfleet.services.health.hosts import HostHealthPolicy


def interval(lab: LabSettings, kind: ResourceKind) -> float:
    return float(getattr(lab.check_interval_seconds, kind.value))


def next_round(lab: LabSettings, kind: ResourceKind, *, draw: Callable[[], float] = random.random) -> float:
    """Seconds to the next round of a kind's checks: its interval moved by up to
    ``check_jitter`` of it either way, so that processes (and labs restarted together) do not
    check in step; never longer than ``LabSettings.detection_seconds`` counts on."""
    return interval(lab, kind) * (1 + lab.check_jitter * (2 * draw() - 1))


def build_server(base: HealthPolicy, lab: LabSettings, server_id: int) -> HealthPolicy:
    t = lab.thresholds_for(ResourceKind.build_server, server_id)
    disk = Thresholds(
        disk_warning_gb=t["disk_warning_gb"],
        disk_critical_gb=t["disk_critical_gb"],
        max_load_per_core=base.thresholds.max_load_per_core,
    )
    return replace(base, thresholds=disk, failure_limit=t["failure_limit"])


def disk_critical_gb(lab: LabSettings, server_id: int) -> float:
    """Below this free disk a build server takes no new build."""
    return float(lab.thresholds_for(ResourceKind.build_server, server_id)["disk_critical_gb"])


def build_thresholds(base: Thresholds, lab: LabSettings) -> Thresholds:
    """What build placement weighs servers by: the kind's thresholds (overrides apply to a
    server's own checks and claims)."""
    t = lab.thresholds.build_server
    return replace(base, disk_warning_gb=t.disk_warning_gb, disk_critical_gb=t.disk_critical_gb)


def host(base: HostHealthPolicy, lab: LabSettings, host_id: int) -> HostHealthPolicy:
    return replace(
        base,
        failure_limit=lab.failure_limit(ResourceKind.host, host_id),
        sample_retention=timedelta(days=lab.history_retention.raw_days),
    )


def board(base: BoardHealthPolicy, lab: LabSettings, board_id: int) -> BoardHealthPolicy:
    t = lab.thresholds_for(ResourceKind.board, board_id)
    return replace(
        base,
        failure_limit=t["failure_limit"],
        temperature_warning_c=t["temperature_warning_c"],
        temperature_critical_c=t["temperature_critical_c"],
    )
