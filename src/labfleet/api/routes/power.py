"""Board power (R18): read the state, switch on or off, power-cycle watching the boot, the history."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, cast

from fastapi import APIRouter, Body, Depends, Path, Query, Request

from labfleet.api.deps import Operator, OptionalBusDep, SessionDep, Viewer
from labfleet.api.problems import responses
from labfleet.api.routes.inventory import api_base
from labfleet.db.models import Board, PowerAction
from labfleet.schemas.common import Page, StatusOut
from labfleet.schemas.enums import PowerActionStatus
from labfleet.schemas.power import ActionName, PowerActionOut, PowerCycleIn, PowerSet
from labfleet.schemas.query import MAX_PAGE
from labfleet.secretbox import SecretBox
from labfleet.services.core.events import EventBus
from labfleet.services.inventory import boards
from labfleet.services.power import history as power_history
from labfleet.services.power import service as power
from labfleet.services.power.access import DeviceAccess, Hardware

router = APIRouter(prefix="/boards", tags=["power"], responses=responses(401, 403, 422))
Ident = Annotated[int, Path(alias="id", description="The board's id.")]
ActionIdent = Annotated[int, Path(description="The power action's id.")]

_RESULT = (
    "The action is recorded and returned whatever its result: look at `status` (and `error`). "
    "409 when the board is busy with another operation (named), being flashed or decommissioned."
)


async def hardware(request: Request) -> AsyncIterator[Hardware]:
    """Drivers and consoles for this request's action; overridden in tests."""
    secrets: SecretBox = request.app.state.secrets
    async with DeviceAccess(secrets) as access:
        yield access


def policy(request: Request) -> power.PowerPolicy:
    """The server's power defaults (``LABFLEET_POWER_*``, read once at start)."""
    policy: power.PowerPolicy = request.app.state.power_policy
    return policy


@dataclass(frozen=True, slots=True)
class Controls:
    """What reading or switching a board's power works with."""

    hardware: Hardware
    policy: power.PowerPolicy
    bus: EventBus | None


def _controls(
    hw: Annotated[Hardware, Depends(hardware)],
    defaults: Annotated[power.PowerPolicy, Depends(policy)],
    bus: OptionalBusDep,
) -> Controls:
    return Controls(hardware=hw, policy=defaults, bus=bus)


ControlsDep = Annotated[Controls, Depends(_controls)]


def render(action: PowerAction, board: Board, base: str) -> PowerActionOut:
    return PowerActionOut(
        id=action.id,
        url=f"{base}/boards/{board.id}/power-actions/{action.id}",
        display=f"power {action.action} #{action.id} of {board.name}",
        board_id=board.id,
        board=board.name,
        action=cast(ActionName, action.action),
        status=StatusOut.of(PowerActionStatus(action.status)),
        requested_by=action.requested_by,
        team=action.team,
        started_at=action.started_at,
        finished_at=action.finished_at,
        duration_s=action.duration_s,
        attempts=action.attempts,
        max_attempts=action.max_attempts,
        power_state=action.power_state,
        boot_seen=action.boot_seen,
        error=action.error,
        detail=action.detail,
    )


@router.get(
    "/{id}/power",
    response_model=PowerActionOut,
    summary="Read a board's power state from its controller",
    description="Asks the power controller (R18.3) and records the read as a `state` action. A "
    "controller that cannot tell (pdudaemon) answers `unknown`; `detail.last_switched` then says what "
    "labfleet last switched it to. " + _RESULT,
    operation_id="get_board_power",
    responses=responses(404, 409),
)
async def get_board_power(
    request: Request,
    session: SessionDep,
    actor: Viewer,
    controls: ControlsDep,
    ident: Ident,
) -> PowerActionOut:
    action = await power.read_state(
        session=session,
        actor=actor,
        hardware=controls.hardware,
        board_id=ident,
        policy=controls.policy,
        bus=controls.bus,
    )
    board = await boards.get(session=session, ident=ident)
    return render(action, board, api_base(request))


@router.put(
    "/{id}/power",
    response_model=PowerActionOut,
    summary="Switch a board on or off",
    description=_RESULT,
    operation_id="set_board_power",
    responses=responses(404, 409),
)
async def set_board_power(
    request: Request,
    session: SessionDep,
    actor: Operator,
    controls: ControlsDep,
    ident: Ident,
    data: PowerSet,
) -> PowerActionOut:
    action = await power.switch(
        session=session,
        actor=actor,
        hardware=controls.hardware,
        board_id=ident,
        state=data.state,
        policy=controls.policy,
        bus=controls.bus,
    )
    board = await boards.get(session=session, ident=ident)
    return render(action, board, api_base(request))


@router.post(
    "/{id}/power-cycle",
    response_model=PowerActionOut,
    summary="Power-cycle a board and watch it boot",
    description="Off, wait, on, then the board's console is watched for its boot pattern within the "
    "boot timeout; retried, and after the last attempt the board is marked `failed` with an alert "
    "(R18.2). Answers once the cycle has ended; progress is announced on the `board:<id>` events "
    "topic. " + _RESULT,
    operation_id="power_cycle_board",
    responses=responses(404, 409),
)
async def power_cycle_board(
    request: Request,
    session: SessionDep,
    actor: Operator,
    controls: ControlsDep,
    ident: Ident,
    options: Annotated[PowerCycleIn | None, Body()] = None,
) -> PowerActionOut:
    action = await power.cycle(
        session=session,
        actor=actor,
        hardware=controls.hardware,
        board_id=ident,
        policy=controls.policy,
        options=options,
        bus=controls.bus,
    )
    board = await boards.get(session=session, ident=ident)
    return render(action, board, api_base(request))


@router.get(
    "/{id}/power-actions",
    response_model=Page[PowerActionOut],
    summary="A board's power actions, newest first",
    description="Who asked, when, and how each ended (R18.4).",
    operation_id="list_power_actions",
    responses=responses(404),
)
async def list_power_actions(
    request: Request,
    session: SessionDep,
    _: Viewer,
    ident: Ident,
    action: Annotated[list[ActionName] | None, Query(description="Only these; repeatable.")] = None,
    status: Annotated[list[PowerActionStatus] | None, Query(description="Only these; repeatable.")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Page[PowerActionOut]:
    total, rows = await power_history.history(
        session=session,
        board_id=ident,
        actions=action or (),
        statuses=status or (),
        limit=limit,
        offset=offset,
    )
    await session.commit()  # actions found abandoned were failed
    board = await boards.get(session=session, ident=ident)
    base = api_base(request)
    return Page[PowerActionOut](count=total, items=[render(a, board, base) for a in rows])


@router.get(
    "/{id}/power-actions/{action_id}",
    response_model=PowerActionOut,
    summary="One power action of a board",
    operation_id="get_power_action",
    responses=responses(404),
)
async def get_power_action(
    request: Request, session: SessionDep, _: Viewer, ident: Ident, action_id: ActionIdent
) -> PowerActionOut:
    board = await boards.get(session=session, ident=ident)
    action = await power_history.get_action(session=session, board_id=ident, action_id=action_id)
    return render(action, board, api_base(request))
