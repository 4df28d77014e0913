"""Request dependencies: the session, the caller, the services' collaborators."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import replace
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.errors import Forbidden, Unauthenticated
from labfleet.schemas.auth import Actor
from labfleet.schemas.enums import Role
from labfleet.schemas.settings import LabSettings
from labfleet.secretbox import SecretBox
from labfleet.services.builds.service import BuildPolicy
from labfleet.services.core import tokens
from labfleet.services.core.events import EventBus
from labfleet.services.core.lab_settings import SettingsView
from labfleet.services.health import tuning
from labfleet.services.inventory.registration import RegistrationValidator

_bearer = HTTPBearer(auto_error=False, description="An API token: `Authorization: Bearer lf_...`")


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    # Routes that change something commit before they answer; anything else is rolled back.
    async with request.app.state.sessions() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


async def _authenticate(
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Actor:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthenticated("an API token is required: Authorization: Bearer <token>")
    actor = await tokens.authenticate(session=session, token=credentials.credentials)
    if session.dirty:  # last_used_at moved on; keep it apart from the request's own changes
        await session.commit()
    return actor


def require(role: Role) -> Callable[..., Coroutine[Any, Any, Actor]]:
    async def check(actor: Annotated[Actor, Depends(_authenticate)]) -> Actor:
        if not actor.can(role):
            raise Forbidden(f"this needs the {role.name} role; the token has {actor.role.name}")
        return actor

    return check


Viewer = Annotated[Actor, Depends(require(Role.viewer))]
Operator = Annotated[Actor, Depends(require(Role.operator))]
Admin = Annotated[Actor, Depends(require(Role.admin))]


def _secrets(request: Request) -> SecretBox:
    box: SecretBox = request.app.state.secrets
    return box


def _validator(request: Request) -> RegistrationValidator:
    validator: RegistrationValidator = request.app.state.validator
    return validator


def _optional_bus(request: Request) -> EventBus | None:
    bus: EventBus | None = getattr(request.app.state, "bus", None)
    return bus


SecretsDep = Annotated[SecretBox, Depends(_secrets)]
OptionalBusDep = Annotated[EventBus | None, Depends(_optional_bus)]
"""The app's event bus, where it has one: what is done is announced there."""
ValidatorDep = Annotated[RegistrationValidator, Depends(_validator)]


def build_policy(request: Request) -> BuildPolicy:
    """How builds are placed now: the process's policy, with the lab settings' disk thresholds."""
    policy: BuildPolicy = request.app.state.policy
    return replace(policy, thresholds=tuning.build_thresholds(policy.thresholds, lab_settings_now(request)))


BuildPolicyDep = Annotated[BuildPolicy, Depends(build_policy)]


def lab_settings_now(request: Request) -> LabSettings:
    """The lab settings as this process applies them now (the defaults where no view is kept)."""
    view: SettingsView | None = getattr(request.app.state, "lab", None)
    if view is not None:
        return view.current
    defaults: LabSettings = request.app.state.lab_defaults
    return defaults


LabDep = Annotated[LabSettings, Depends(lab_settings_now)]
