"""The ASGI application: engines are made in ``lifespan``, never at import."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from labfleet import __version__
from labfleet.api import policies, problems, redact
from labfleet.api.routes import (
    alerts,
    artifacts,
    audit,
    builds,
    environments,
    events,
    flashing,
    lifecycle,
    notifications,
    pipelines,
    power,
    reservations,
    statuses,
    tokens,
)
from labfleet.api.routes import health as health_route
from labfleet.api.routes import metrics as metrics_route
from labfleet.api.routes import settings as lab_settings
from labfleet.api.routes.resources import boards_router, build_servers_router, hosts_router
from labfleet.config import Settings
from labfleet.db.engine import create_engine, session_factory
from labfleet.engine import Engine, EngineSettings
from labfleet.secretbox import SecretBox
from labfleet.selection import Thresholds
from labfleet.services.artifacts.service import open_store
from labfleet.services.builds.service import BuildPolicy
from labfleet.services.core.events import EventBus
from labfleet.services.core.lab_settings import SettingsView
from labfleet.services.health.probes import NoProbe, live_probe
from labfleet.services.inventory.device_checks import device_checks
from labfleet.services.inventory.registration import InputOnly, RegistrationValidator

API = "/api/v1"


def build_policy(settings: Settings) -> BuildPolicy:
    return BuildPolicy(
        thresholds=Thresholds(
            disk_warning_gb=settings.build_disk_warning_gb, disk_critical_gb=settings.build_disk_critical_gb
        ),
        lease_seconds=settings.build_lease_seconds,
        heartbeat_seconds=settings.build_heartbeat_seconds,
        max_attempts=settings.build_max_attempts,
    )


# Included in this order, which is the order of the OpenAPI document's paths.
_ROUTERS = (
    build_servers_router,
    hosts_router,
    boards_router,
    health_route.router,
    power.router,
    flashing.router,
    builds.router,
    events.router,
    reservations.router,
    pipelines.router,
    environments.router,
    lifecycle.router,
    artifacts.router,
    tokens.router,
    audit.router,
    statuses.router,
    alerts.router,
    notifications.channels_router,
    notifications.deliveries_router,
    lab_settings.router,
)


def create_app(settings: Settings, *, validator: RegistrationValidator | None = None) -> FastAPI:
    """The application for ``settings``; the database must already be migrated."""
    app = FastAPI(
        title="labfleet",
        version=__version__,
        description="Control plane for embedded and kernel test labs.",
        openapi_url=f"{API}/openapi.json",
        docs_url=f"{API}/docs",
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
        lifespan=_lifespan(settings, validator),
        generate_unique_id_function=lambda route: route.name,
    )
    problems.install(app)
    # Set here, not in the lifespan, so that an app driven without one (the tests') has them too.
    app.state.power_policy = policies.power(settings)
    app.state.flash_policy = policies.flash(settings)
    app.state.lab_defaults = policies.lab_defaults(settings)
    _install_openapi(app)
    for router in _ROUTERS:
        app.include_router(router, prefix=API)
    # Where Prometheus looks by default, outside the versioned API.
    app.include_router(metrics_route.router)
    return app


def _lifespan(
    settings: Settings, validator: RegistrationValidator | None
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """What the app holds while it serves: the database, secrets, store, bus, device checks and
    (with ``settings.engine``) the engine; made when it starts, closed when it stops."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        redact.install()
        async with AsyncExitStack() as stack:
            engine = create_engine(settings.effective_database_url)
            stack.push_async_callback(engine.dispose)
            app.state.sessions = session_factory(engine)
            app.state.secrets = SecretBox.from_key_file(settings.effective_secret_key_file)
            app.state.store = open_store(settings.effective_artifact_dir)
            app.state.policy = build_policy(settings)
            bus = app.state.bus = EventBus()
            stack.push_async_callback(bus.close)
            await bus.connect(settings.effective_database_url)
            await _keep_lab_settings(app, stack, bus)
            await _open_device_checks(app, stack, settings, validator)
            if settings.engine:
                app.state.engine = await stack.enter_async_context(_engine(app, settings, bus))
            # Everything made so far (modules, app, engine) lives as long as the process:
            # keep it out of the cyclic collector's full passes, which otherwise stall
            # requests for tens of milliseconds.
            gc.freeze()
            yield

    return lifespan


async def _keep_lab_settings(app: FastAPI, stack: AsyncExitStack, bus: EventBus) -> None:
    """One view of the lab settings for the whole process, the API's and the engine's."""
    view = app.state.lab = SettingsView(app.state.sessions, app.state.lab_defaults, bus=bus)
    await view.refresh()
    task = asyncio.create_task(view.run(), name="lab-settings")

    async def stop() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    stack.push_async_callback(stop)


async def _open_device_checks(
    app: FastAPI, stack: AsyncExitStack, settings: Settings, validator: RegistrationValidator | None
) -> None:
    """How registration and leaving maintenance ask devices: for real, or trusting the operator."""
    if validator is not None:
        app.state.validator = validator
    elif settings.device_checks:
        app.state.validator = await stack.enter_async_context(device_checks())
    else:
        app.state.validator = InputOnly()
    if settings.device_checks:
        app.state.probe = await stack.enter_async_context(live_probe())
    else:
        app.state.probe = NoProbe()


def _engine(app: FastAPI, settings: Settings, bus: EventBus) -> Engine:
    return Engine(
        lab=app.state.lab,
        sessions=app.state.sessions,
        bus=bus,
        store=app.state.store,
        secrets=app.state.secrets,
        settings=EngineSettings(
            policy=app.state.policy,
            max_builds=settings.max_builds,
            retention_interval_s=settings.retention_interval_seconds,
            health_interval_s=settings.health_interval_seconds,
            health_failure_limit=settings.health_failure_limit,
            device_checks=settings.device_checks,
            utilization_retention_days=settings.utilization_retention_days,
            pipelines=policies.pipelines(settings),
            power=app.state.power_policy,
            flash=app.state.flash_policy,
            provisioning=policies.provision(settings),
            notifications=policies.notifications(settings),
            audit_archive_dir=settings.effective_audit_archive_dir,
        ),
    )


def _install_openapi(app: FastAPI) -> None:
    """The OpenAPI document, made once, with the problem schemas every error answers with."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = problems.add_schemas(
                get_openapi(
                    title=app.title, version=app.version, description=app.description, routes=app.routes
                )
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
