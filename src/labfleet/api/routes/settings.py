"""``/settings``: the lab's settings, read by anyone, changed by admins, applied at once."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request, Response

from labfleet.api.deps import Admin, OptionalBusDep, SessionDep, Viewer
from labfleet.api.problems import responses
from labfleet.errors import Invalid
from labfleet.schemas.settings import LabSettings, SettingsOut
from labfleet.services.core import lab_settings
from labfleet.services.core.lab_settings import Stored

router = APIRouter(prefix="/settings", tags=["settings"], responses=responses(401, 403, 422))


def _defaults(request: Request) -> LabSettings:
    defaults: LabSettings = request.app.state.lab_defaults
    return defaults


def _out(stored: Stored, response: Response) -> SettingsOut:
    response.headers["ETag"] = f'"{stored.version}"'
    return SettingsOut(
        **stored.settings.model_dump(),
        version=stored.version,
        updated_at=stored.updated_at,
        updated_by=stored.updated_by,
    )


def _version(if_match: str | None) -> int | None:
    if if_match is None:
        return None
    try:
        return int(if_match.strip().removeprefix("W/").strip('"'))
    except ValueError:
        raise Invalid("If-Match is the ETag of GET /settings, a version number", field="If-Match") from None


@router.get("", response_model=SettingsOut, summary="Show the lab's settings")
async def get_settings(session: SessionDep, _: Viewer, request: Request, response: Response) -> SettingsOut:
    return _out(await lab_settings.read(session, _defaults(request)), response)


@router.put(
    "",
    response_model=SettingsOut,
    summary="Replace the lab's settings; every process applies them within seconds",
    responses=responses(409),
)
async def put_settings(
    session: SessionDep,
    actor: Admin,
    bus: OptionalBusDep,
    request: Request,
    response: Response,
    data: LabSettings,
    if_match: Annotated[
        str | None, Header(description="The ETag read: refused (409) if the settings changed since.")
    ] = None,
) -> SettingsOut:
    stored = await lab_settings.replace(
        session, actor, data, defaults=_defaults(request), if_version=_version(if_match)
    )
    await session.commit()
    lab_settings.announce(bus, stored)
    return _out(stored, response)
