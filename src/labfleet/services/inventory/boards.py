"""Boards: registration (R8), listing, update, removal."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload, selectinload

from labfleet.db.models import Board, BoardLabel, BoardPeripheral
from labfleet.errors import Conflict
from labfleet.schemas.auth import Actor
from labfleet.schemas.boards import BoardCreate, BoardSshIn, BoardUpdate
from labfleet.schemas.enums import BoardStatus
from labfleet.schemas.query import ListQuery
from labfleet.schemas.wiring import FlashConfig, PowerConfig
from labfleet.secretbox import SecretBox
from labfleet.services.inventory import common as inventory
from labfleet.services.inventory import credentials, wiring
from labfleet.services.inventory.registration import RegistrationValidator
from labfleet.services.reservations import service as reservations


def _snapshot(b: Board) -> dict[str, Any]:
    return {
        "name": b.name,
        "board_type": b.board_type,
        "architecture": b.architecture,
        "serial_number": b.serial_number,
        "status": b.status,
        "console_url": b.console_url,
        "ssh_address": b.ssh_address,
        "ssh_credentials_set": b.ssh_secret is not None,
        "power_driver": b.power_driver,
        "power_params": b.power_params,
        "power_secret_set": b.power_secret is not None,
        "flash_driver": b.flash_driver,
        "flash_params": b.flash_params,
        "flash_secret_set": b.flash_secret is not None,
        "firmware_version": b.firmware_version,
        "peripherals": sorted(p.name for p in b.peripherals),
        "description": b.description,
        "labels": {label.key: label.value for label in b.labels},
    }


BOARDS: inventory.Collection[Board] = inventory.Collection(
    object_type="board",
    noun="board",
    model=Board,
    label_model=BoardLabel,
    label_fk=BoardLabel.board_id,
    unique=("name", "serial_number"),
    sortable=frozenset({"id", "name", "board_type", "architecture", "status", "created_at", "updated_at"}),
    filterable=frozenset({"architecture", "board_type"}),
    loads=(selectinload(Board.labels), selectinload(Board.peripherals), joinedload(Board.health)),
    refreshed=("status_choice", "health", "updated_at"),
    snapshot=_snapshot,
    display=lambda b: b.name,
)


def _set_ssh(board: Board, secrets: SecretBox, ssh: BoardSshIn) -> None:
    board.ssh_address = ssh.address
    board.ssh_port = ssh.port
    board.ssh_user = ssh.username
    board.ssh_secret = credentials.reseal(
        secrets, board.ssh_secret, private_key=ssh.private_key, password=ssh.password
    )


def _checked_wiring(data: BoardCreate | BoardUpdate, name: str) -> dict[str, dict[str, Any]]:
    """The parameters to store of the power and flash wiring ``data`` sends, checked against
    their drivers before anything changes (``Invalid`` naming ``power.<param>``, ``flash.<param>``)."""
    params: dict[str, dict[str, Any]] = {}
    if data.power is not None:
        params["power"] = wiring.power_params(data.power)
    if data.flash is not None:
        params["flash"] = wiring.flash_params(data.flash, board=name)
    return params


def _set_power(board: Board, secrets: SecretBox, power: PowerConfig, params: dict[str, Any]) -> None:
    board.power_driver = power.driver
    board.power_params = params
    if power.secret is not None:
        board.power_secret = credentials.seal(secrets, **power.secret.model_dump())


def _set_flash(board: Board, secrets: SecretBox, flash: FlashConfig, params: dict[str, Any]) -> None:
    board.flash_driver = flash.driver
    board.flash_params = params
    if flash.secret is not None:
        board.flash_secret = credentials.seal(secrets, **flash.secret.model_dump())


async def register(
    *,
    session: AsyncSession,
    actor: Actor,
    secrets: SecretBox,
    validator: RegistrationValidator,
    data: BoardCreate,
) -> Board:
    """Add a board to the pool once its console and/or SSH answer (R8.1-8.5)."""
    await inventory.ensure_unique(
        BOARDS, session=session, values={"name": data.name, "serial_number": data.serial_number}
    )
    params = _checked_wiring(data, data.name)
    facts = await inventory.validated(
        BOARDS, validator.board(data), field="console_url" if data.console_url else "ssh"
    )
    board = Board(
        name=data.name,
        board_type=data.board_type,
        architecture=data.architecture.value,
        serial_number=data.serial_number,
        console_url=data.console_url,
        firmware_version=facts.firmware_version or data.firmware_version,
        description=data.description,
        labels=[BoardLabel(key=k, value=v) for k, v in data.labels.items()],
        peripherals=[BoardPeripheral(name=p) for p in data.peripherals],
        power_params={},
        flash_params={},
    )
    if data.ssh is not None:
        _set_ssh(board, secrets, data.ssh)
        board.ssh_host_key = facts.host_key
    if data.power is not None:
        _set_power(board, secrets, data.power, params["power"])
    if data.flash is not None:
        _set_flash(board, secrets, data.flash, params["flash"])
    return await inventory.save_new(BOARDS, session=session, actor=actor, obj=board)


async def get(*, session: AsyncSession, ident: int) -> Board:
    return await inventory.fetch(BOARDS, session=session, ident=ident)


async def search(*, session: AsyncSession, query: ListQuery) -> tuple[int, list[Board]]:
    return await inventory.listing(BOARDS, session=session, query=query)


def _sync_peripherals(board: Board, wanted: list[str]) -> None:
    current = {p.name: p for p in board.peripherals}
    for name, row in current.items():
        if name not in wanted:
            board.peripherals.remove(row)
    board.peripherals.extend(BoardPeripheral(name=n) for n in wanted if n not in current)


async def update(
    *, session: AsyncSession, actor: Actor, secrets: SecretBox, ident: int, data: BoardUpdate
) -> Board:
    board = await get(session=session, ident=ident)
    before = _snapshot(board)
    sent = inventory.changed_fields(data)
    await inventory.ensure_unique(BOARDS, session=session, values=sent, exclude_id=ident)
    params = _checked_wiring(data, data.name or board.name)
    inventory.assign(
        board, sent, ("name", "board_type", "serial_number", "console_url", "firmware_version", "description")
    )
    if data.architecture is not None:
        board.architecture = data.architecture.value
    if data.ssh is not None:
        _set_ssh(board, secrets, data.ssh)
    if data.power is not None:
        _set_power(board, secrets, data.power, params["power"])
    if data.flash is not None:
        _set_flash(board, secrets, data.flash, params["flash"])
    if data.peripherals is not None:
        _sync_peripherals(board, data.peripherals)
    if data.labels is not None:
        inventory.sync_labels(board, BOARDS, data.labels)
    return await inventory.save_changes(
        BOARDS,
        session=session,
        actor=actor,
        obj=board,
        before=before,
        replaced=credentials.replaced(ssh=data.ssh, power=data.power, flash=data.flash),
    )


async def remove(*, session: AsyncSession, actor: Actor, ident: int) -> None:
    """Remove it; refused while a reservation holds it (R12.4)."""
    await reservations.ensure_unreserved(session=session, doing="remove", board_id=ident)
    await inventory.delete(BOARDS, session=session, actor=actor, ident=ident)


async def set_status(*, session: AsyncSession, actor: Actor, ident: int, status: BoardStatus) -> Any:
    """Maintenance (no new reservation, running work goes on), back online, or decommissioned
    (refused while a reservation holds it; it stays in the history) (R12). Whoever puts it
    back online checks first that it answers (``resource_probes``)."""
    obj = await get(session=session, ident=ident)
    if obj.status == BoardStatus.flashing and status is not BoardStatus.flashing:
        raise Conflict(f"board {obj.name} is being flashed; its flash job sets its status when it ends")
    if status is BoardStatus.decommissioned:
        await reservations.ensure_unreserved(session=session, doing="decommission", board_id=ident)
    before = _snapshot(obj)
    obj.status = status.value
    return await inventory.save_changes(BOARDS, session=session, actor=actor, obj=obj, before=before)
