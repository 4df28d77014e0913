"""The engine: the build, flash, pipeline, environment and notification workers and the
periodic jobs (lease recovery, build server, host and board health checks, retention,
reservation expiry, abandoned power actions), started and stopped together."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from labfleet.engine.builds import BuildWorker
from labfleet.engine.environments import EnvironmentWorker
from labfleet.engine.flashing import FlashWorker
from labfleet.engine.health import HealthMonitor
from labfleet.engine.loops import every, utcnow
from labfleet.engine.notifications import NotificationWorker
from labfleet.engine.pipelines import PipelineWorker
from labfleet.engine.resource_health import HealthProbe, ResourceHealthMonitor
from labfleet.schemas.settings import LabSettings
from labfleet.secretbox import SecretBox
from labfleet.services.artifacts import service as artifacts
from labfleet.services.artifacts.service import Store as ArtifactStore
from labfleet.services.builds.run import SshPool
from labfleet.services.builds.service import BuildPolicy
from labfleet.services.core import lab_settings
from labfleet.services.core.events import EventBus
from labfleet.services.core.lab_settings import SettingsView
from labfleet.services.environments.policy import ProvisionPolicy
from labfleet.services.environments.provisioning import Provisioner, device_targets
from labfleet.services.environments.record import EnvRecord
from labfleet.services.flashing.service import FlashPolicy
from labfleet.services.health import boards as board_health
from labfleet.services.health import hosts as host_health
from labfleet.services.health.boards import BoardHealthPolicy, BoardProbe
from labfleet.services.health.build_servers import HealthPolicy
from labfleet.services.health.hosts import HostHealthPolicy, HostProbe
from labfleet.services.health.probes import LiveProbe, NoProbe, live_probe
from labfleet.services.notifications.policy import NotificationPolicy
from labfleet.services.pipelines.settings import PipelineSettings
from labfleet.services.power import service as power
from labfleet.services.power.access import DeviceAccess, Hardware
from labfleet.services.power.service import PowerPolicy
from labfleet.services.reservations import service as reservations
from labfleet.services.retention import service as retention

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class EngineSettings:
    policy: BuildPolicy = field(default_factory=BuildPolicy)
    max_builds: int = 16
    poll_seconds: float = 2.0
    retention_interval_s: float = 3600.0
    health_interval_s: float = 60.0
    health_failure_limit: int = 3
    """For build servers, hosts and boards alike (a board gets its recovery power cycle then)."""
    reservation_sweep_s: float = 15.0
    device_checks: bool = True
    """Host and board checks ask the devices; off, they trust the operator (``NoProbe``)."""
    utilization_retention_days: float = 7.0
    sample_prune_interval_s: float = 3600.0
    power: PowerPolicy = field(default_factory=PowerPolicy)
    """For the boards' state reads and recovery cycles."""
    flash: FlashPolicy = field(default_factory=FlashPolicy)
    pipelines: PipelineSettings = field(default_factory=PipelineSettings)
    provisioning: ProvisionPolicy = field(default_factory=ProvisionPolicy)
    """Where and how environments are deployed."""
    notifications: NotificationPolicy = field(default_factory=NotificationPolicy)
    audit_archive_dir: Path | None = None
    """Where retention writes audit entries before removing them; none: the audit log is kept."""


class Engine:
    """``async with Engine(...)``: workers run inside the block and are stopped at its end."""

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        bus: EventBus,
        store: ArtifactStore,
        secrets: SecretBox,
        settings: EngineSettings,
        probe: HealthProbe | None = None,
        hardware: Hardware | None = None,
        provisioner: Provisioner | None = None,
        lab: SettingsView | None = None,
    ) -> None:
        """``probe`` and ``hardware`` replace the devices for host and board checks (tests);
        by default they are the live ones, or none when ``settings.device_checks`` is off.
        ``provisioner`` replaces how environments reach their devices (tests). ``lab`` is the
        process's view of the lab settings (the app's); without one the engine keeps its own."""
        self._sessions = sessions
        self._bus = bus
        self._store = store
        self._secrets = secrets
        self._settings = settings
        self._probe = probe
        self._hardware = hardware
        self._provisioner_given = provisioner
        self._lab_given = lab
        self.lab = lab or SettingsView(sessions, self._lab_defaults(), bus=bus)
        # Health checks get connections of their own (see engine/health.py).
        self._health_pool = SshPool()
        self._stack = AsyncExitStack()
        self._tasks: list[asyncio.Task[None]] = []
        self.worker: BuildWorker | None = None
        self.health: HealthMonitor | None = None
        self.resource_health: ResourceHealthMonitor | None = None

    def _lab_defaults(self) -> LabSettings:
        s = self._settings
        return lab_settings.defaults(
            interval_s=s.health_interval_s,
            failure_limit=s.health_failure_limit,
            disk_warning_gb=s.policy.thresholds.disk_warning_gb,
            disk_critical_gb=s.policy.thresholds.disk_critical_gb,
            raw_days=s.utilization_retention_days,
        )

    def _now(self) -> LabSettings:
        return self.lab.current

    async def __aenter__(self) -> Engine:
        s = self._settings
        if self._lab_given is None:
            await self.lab.refresh()
        self.worker = BuildWorker(
            sessions=self._sessions,
            bus=self._bus,
            store=self._store,
            secrets=self._secrets,
            policy=s.policy,
            max_builds=s.max_builds,
            poll_seconds=s.poll_seconds,
            lab=self._now,
        )
        self.health = HealthMonitor(
            sessions=self._sessions,
            bus=self._bus,
            secrets=self._secrets,
            pool=self._health_pool,
            policy=HealthPolicy(
                thresholds=s.policy.thresholds,
                failure_limit=s.health_failure_limit,
                max_attempts=s.policy.max_attempts,
            ),
            interval_s=s.health_interval_s,
            lab=self._now,
        )
        try:
            self.resource_health = await self._resource_health()
        except BaseException:
            await self._stack.aclose()
            raise
        self.provisioner = self._provisioner_given or await self._provisioner()
        self._make_workers()
        self._tasks = self._loops()
        log.info("engine started: build worker %s", self.worker.name)
        return self

    def _make_workers(self) -> None:
        """The workers that use the provisioner: pipelines, environments; and the flash worker."""
        s = self._settings
        self.pipelines = PipelineWorker(
            sessions=self._sessions,
            bus=self._bus,
            provisioner=self.provisioner,
            build_policy=s.policy,
            settings=s.pipelines,
        )
        self.environments = EnvironmentWorker(
            sessions=self._sessions, bus=self._bus, provisioner=self.provisioner
        )
        self.notifier = NotificationWorker(
            sessions=self._sessions, bus=self._bus, secrets=self._secrets, policy=s.notifications
        )
        self.flasher = FlashWorker(
            sessions=self._sessions,
            bus=self._bus,
            store=self._store,
            secrets=self._secrets,
            policy=s.flash,
        )

    def _loops(self) -> list[asyncio.Task[None]]:
        """Every worker and periodic sweep of this process, each a task of its own."""
        s = self._settings
        assert self.worker is not None
        assert self.health is not None
        assert self.resource_health is not None
        lab = (
            [] if self._lab_given is not None else [asyncio.create_task(self.lab.run(), name="lab-settings")]
        )
        return [
            *lab,
            asyncio.create_task(self.worker.run(), name="build-worker"),
            asyncio.create_task(self.flasher.run(), name="flash-worker"),
            asyncio.create_task(self.pipelines.run(), name="pipeline-worker"),
            asyncio.create_task(self.environments.run(), name="environment-worker"),
            asyncio.create_task(self.notifier.run(), name="notification-worker"),
            asyncio.create_task(
                every(s.reservation_sweep_s, "environment expiry", self.environments.expire, first=5.0),
                name="environment-expiry",
            ),
            asyncio.create_task(self.health.run(), name="build-server-health"),
            asyncio.create_task(self.resource_health.run_hosts(), name="host-health"),
            asyncio.create_task(self.resource_health.run_boards(), name="board-health"),
            asyncio.create_task(
                every(
                    s.sample_prune_interval_s,
                    "utilization sample pruning",
                    self.resource_health.prune_samples,
                    first=60.0,
                ),
                name="utilization-samples",
            ),
            asyncio.create_task(
                every(s.retention_interval_s, "artifact retention", self.run_retention, first=60.0),
                name="retention",
            ),
            asyncio.create_task(
                every(s.reservation_sweep_s, "reservation expiry", self.expire_reservations, first=1.0),
                name="reservation-expiry",
            ),
            asyncio.create_task(
                every(s.reservation_sweep_s, "stale power actions", self.fail_stale_power_actions, first=1.0),
                name="power-actions",
            ),
        ]

    async def _provisioner(self) -> Provisioner:
        """Deployments reach devices whatever ``device_checks`` says: that is their job."""
        hardware = self._hardware
        if hardware is None:
            hardware = await self._stack.enter_async_context(DeviceAccess(self._secrets))
        pool = await self._stack.enter_async_context(SshPool())
        if self._probe is not None:
            host_probe: HostProbe = self._probe
            board_probe: BoardProbe = self._probe
        else:
            host_probe = host_health.LibvirtProbe()
            board_probe = board_health.LiveBoardProbe(LiveProbe(pool=pool), pool=pool)
        record = EnvRecord(self._sessions, self._bus)
        targets = device_targets(
            record=record,
            store=self._store,
            secrets=self._secrets,
            pool=pool,
            hardware=hardware,
            host_probe=host_probe,
            board_probe=board_probe,
            policy=self._settings.provisioning,
            power_policy=self._settings.power,
            flash_policy=self._settings.flash,
        )
        return Provisioner(record=record, targets=targets)

    async def _resource_health(self) -> ResourceHealthMonitor:
        s = self._settings
        hosts: HostProbe
        boards: BoardProbe
        hardware = self._hardware
        if self._probe is not None:
            hosts = boards = self._probe
        elif s.device_checks:
            live = await self._stack.enter_async_context(live_probe())
            hosts = host_health.LibvirtProbe()
            boards = board_health.LiveBoardProbe(live, pool=self._health_pool)
            if hardware is None:
                hardware = await self._stack.enter_async_context(DeviceAccess(self._secrets))
        else:
            hosts, boards = host_health.ProbeOnly(NoProbe()), board_health.ProbeOnly(NoProbe())
        return ResourceHealthMonitor(
            sessions=self._sessions,
            bus=self._bus,
            secrets=self._secrets,
            hosts=hosts,
            boards=boards,
            hardware=hardware,
            host_policy=HostHealthPolicy(
                failure_limit=s.health_failure_limit,
                sample_retention=timedelta(days=s.utilization_retention_days),
            ),
            board_policy=BoardHealthPolicy(failure_limit=s.health_failure_limit),
            power_policy=s.power,
            interval_s=s.health_interval_s,
            lab=self._now,
        )

    async def expire_reservations(self) -> list[int]:
        """Release every reservation past its expiry; logs which."""
        async with self._sessions() as session:
            released = await reservations.expire_due(session=session)
            await session.commit()
        if released:
            log.info("released expired reservations %s", ", ".join(f"#{i}" for i in released))
        return released

    async def fail_stale_power_actions(self) -> list[int]:
        """Power actions whose process died are failed once past their deadline, with the reason."""
        async with self._sessions() as session:
            failed = await power.recover_stale(session=session)
            await session.commit()
        return failed

    async def run_retention(self) -> None:
        """One pass of retention, as the periodic task runs it: artifacts, then finished work's
        records; logs what it removed."""
        await self._retain_artifacts()
        ages = self.lab.current.retention
        if self._settings.audit_archive_dir is None:
            ages = ages.model_copy(update={"audit_log_days": None})
        removed = await retention.apply(
            self._sessions, ages=ages, archive_dir=self._settings.audit_archive_dir or Path(), now=utcnow()
        )
        if removed.any():
            log.info("retention removed %s", removed)

    async def _retain_artifacts(self) -> None:
        async with self._sessions() as session:
            policy = await artifacts.policy(session=session)
            removal = await artifacts.apply_retention(
                session=session,
                store=self._store,
                now=datetime.now(UTC),
                keep_last=policy.keep_last,
                max_age=None if policy.max_age_days is None else timedelta(days=policy.max_age_days),
            )
            await session.commit()
        if removal.artifacts:
            log.info(
                "retention removed %d artifacts (%s) and %d blobs",
                len(removal.artifacts),
                ", ".join(f"#{a.id} {a.name}" for a in removal.artifacts),
                len(removal.blobs),
            )

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await self._stack.aclose()
        await self._health_pool.close()
