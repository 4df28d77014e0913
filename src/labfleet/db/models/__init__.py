"""Every table labfleet keeps; importing this module registers them all on ``Base``."""

from labfleet.db.models.alerts import Alert
from labfleet.db.models.allocation import AllocationPolicy, HealthThreshold, Reservation, ResourceGroup
from labfleet.db.models.artifacts import Artifact, ArtifactReference
from labfleet.db.models.audit import AuditEntry
from labfleet.db.models.boards import Board, BoardHealth, BoardLabel, BoardPeripheral
from labfleet.db.models.build_servers import BuildServer, BuildServerLabel, Toolchain
from labfleet.db.models.builds import BuildJob, BuildLogChunk
from labfleet.db.models.environments import Environment
from labfleet.db.models.flashing import FlashJob as FlashJob
from labfleet.db.models.hosts import Host, HostLabel, UtilizationSample
from labfleet.db.models.notifications import (
    AlertEvent,
    DeliveryAttempt,
    NotificationChannel,
    NotificationDelivery,
)
from labfleet.db.models.pipelines import Pipeline, PipelineLogChunk, PipelineStage, TestResult
from labfleet.db.models.power import PowerAction
from labfleet.db.models.settings import LabSettingsRow
from labfleet.db.models.statuses import (
    BoardStatusChoice,
    BuildJobStatusChoice,
    BuildServerStatusChoice,
    HostStatusChoice,
)
from labfleet.db.models.tokens import ApiToken

__all__ = [
    "Alert",
    "AlertEvent",
    "AllocationPolicy",
    "ApiToken",
    "Artifact",
    "ArtifactReference",
    "AuditEntry",
    "Board",
    "BoardHealth",
    "BoardLabel",
    "BoardPeripheral",
    "BoardStatusChoice",
    "BuildJob",
    "BuildJobStatusChoice",
    "BuildLogChunk",
    "BuildServer",
    "BuildServerLabel",
    "BuildServerStatusChoice",
    "DeliveryAttempt",
    "Environment",
    "HealthThreshold",
    "Host",
    "HostLabel",
    "HostStatusChoice",
    "LabSettingsRow",
    "NotificationChannel",
    "NotificationDelivery",
    "Pipeline",
    "PipelineLogChunk",
    "PipelineStage",
    "PowerAction",
    "Reservation",
    "ResourceGroup",
    "TestResult",
    "Toolchain",
    "UtilizationSample",
]
