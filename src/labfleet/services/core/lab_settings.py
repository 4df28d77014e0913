"""The lab's settings: read by every process, changed by admins, applied without a restart.

The stored document (``lab_settings``, one row) holds what an admin set, merged over the
defaults when read; every change bumps its version, is audited, and is announced on the
events bus (topic ``settings``; NOTIFY takes it to the other processes on PostgreSQL).
A ``SettingsView`` is one process's copy: the workers read it for every decision, and it
re-reads the row when told of a change, and every ``ttl`` seconds in any case (SQLite has
no NOTIFY; a missed event costs at most that long).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from labfleet.db.base import utcnow
from labfleet.db.models import Board, BuildServer, Host, LabSettingsRow
from labfleet.db.repositories import settings as repo
from labfleet.errors import Conflict, Invalid
from labfleet.schemas.auth import Actor
from labfleet.schemas.enums import ResourceKind
from labfleet.schemas.settings import LabSettings
from labfleet.services.core import audit
from labfleet.services.core.events import EventBus

log = logging.getLogger(__name__)

TOPIC = "settings"
OBJECT_TYPE = "settings"
_TABLES: dict[ResourceKind, type[Any]] = {
    ResourceKind.build_server: BuildServer,
    ResourceKind.host: Host,
    ResourceKind.board: Board,
}


@dataclass(frozen=True, slots=True)
class Stored:
    settings: LabSettings
    version: int
    """0: nothing stored yet, the defaults."""
    updated_at: datetime | None = None
    updated_by: str | None = None


def defaults(
    *, interval_s: float, failure_limit: int, disk_warning_gb: float, disk_critical_gb: float, raw_days: float
) -> LabSettings:
    """The settings a process applies until some are stored, from its own (``LABFLEET_*``)."""
    every = {"build_server": interval_s, "host": interval_s, "board": interval_s}
    thresholds = {
        "build_server": {
            "failure_limit": failure_limit,
            "disk_warning_gb": disk_warning_gb,
            "disk_critical_gb": disk_critical_gb,
        },
        "host": {"failure_limit": failure_limit},
        "board": {"failure_limit": failure_limit},
    }
    draft = LabSettings.model_validate(
        {
            "check_interval_seconds": every,
            "thresholds": thresholds,
            "history_retention": {"raw_days": raw_days},
        }
    )
    # Long intervals from the environment stretch the alert limit rather than refuse to start.
    slowest = max(draft.detection_seconds(kind, failure_limit) for kind in ResourceKind)
    if slowest > draft.alert_time_limit_seconds:
        draft = draft.model_copy(update={"alert_time_limit_seconds": min(86400.0, slowest)})
    return draft


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        merged[key] = (
            _merge(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
        )
    return merged


def merged(defaults: LabSettings, document: dict[str, Any]) -> LabSettings:
    """The stored document over the defaults."""
    return LabSettings.model_validate(_merge(defaults.model_dump(mode="json"), document))


def _of(row: LabSettingsRow | None, defaults: LabSettings) -> Stored:
    if row is None:
        return Stored(defaults, 0)
    return Stored(merged(defaults, row.document), row.version, row.updated_at, row.updated_by)


async def read(session: AsyncSession, defaults: LabSettings) -> Stored:
    return _of(await repo.get(session), defaults)


async def _check_resources(session: AsyncSession, new: LabSettings) -> None:
    for i, o in enumerate(new.overrides):
        if await session.get(_TABLES[o.resource_kind], o.resource_id) is None:
            raise Invalid(
                f"{o.resource_kind.value} {o.resource_id} does not exist", field=f"overrides.{i}.resource_id"
            )


async def replace(
    session: AsyncSession,
    actor: Actor,
    new: LabSettings,
    *,
    defaults: LabSettings,
    if_version: int | None = None,
) -> Stored:
    """Store ``new`` whole, if it holds together and (given ``if_version``) nobody changed the
    settings since that version; audited. The caller commits, then ``announce``s."""
    wrong = new.inconsistency()
    if wrong is not None:
        raise Invalid(wrong[1], field=wrong[0])
    await _check_resources(session, new)
    row = await repo.get(session, for_update=True)
    before = _of(row, defaults)
    if if_version is not None and before.version != if_version:
        raise Conflict(
            f"the settings changed since version {if_version} (now {before.version}, by "
            f"{before.updated_by}): read them again and reapply your change"
        )
    if row is None:
        row = LabSettingsRow(id=1, version=0)
        session.add(row)
    row.document = new.model_dump(mode="json")
    row.version = before.version + 1
    row.updated_at = utcnow()
    row.updated_by = actor.name
    await session.flush()
    await audit.record(
        session=session,
        actor=actor,
        action="update",
        object_type=OBJECT_TYPE,
        object_id=None,
        display=f"settings version {row.version}",
        before=_changed(before.settings, new, old=True),
        after=_changed(before.settings, new, old=False),
    )
    return _of(row, defaults)


def _changed(before: LabSettings, after: LabSettings, *, old: bool) -> dict[str, Any]:
    """The top-level sections that differ, as they were (``old``) or are now."""
    a, b = before.model_dump(mode="json"), after.model_dump(mode="json")
    source = a if old else b
    return {key: source[key] for key in a if a[key] != b[key]}


def announce(bus: EventBus | None, stored: Stored) -> None:
    if bus is not None:
        bus.publish(TOPIC, {"type": "settings", "version": stored.version})


class SettingsView:
    """This process's settings, kept current (see the module's docstring)."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        defaults: LabSettings,
        *,
        bus: EventBus | None = None,
        ttl: float = 5.0,
    ) -> None:
        self._sessions = sessions
        self.defaults = defaults
        self._bus = bus
        self._ttl = ttl
        self.stored = Stored(defaults, 0)

    @property
    def current(self) -> LabSettings:
        return self.stored.settings

    async def refresh(self) -> Stored:
        async with self._sessions() as session:
            version = await repo.version(session)
            if version != self.stored.version:
                self.stored = await read(session, self.defaults)
                log.info("settings version %d applied", self.stored.version)
        return self.stored

    async def run(self) -> None:
        """Keep current until cancelled."""
        sub = self._bus.subscribe([TOPIC]) if self._bus is not None else None
        try:
            while True:
                try:
                    await self.refresh()
                except Exception:
                    log.exception("reading the settings failed; keeping version %d", self.stored.version)
                if sub is None:
                    await asyncio.sleep(self._ttl)
                else:
                    await sub.get(timeout=self._ttl)
        finally:
            if sub is not None:
                sub.close()
