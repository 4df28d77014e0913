"""Flashing boards as durable jobs, on SQLite and PostgreSQL, with in-memory flash stations, outlets
and consoles (``tests/services/flashing/rig.py``).

Validates: 6.2, 6.3, 6.4, 6.5 (property 15)
"""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, update

from labfleet.db.base import utcnow
from labfleet.db.models import Alert, ArtifactReference, FlashJob
from labfleet.errors import Conflict, Invalid
from labfleet.schemas.reservations import ReservationCreate
from labfleet.services.flashing import service as flashing
from labfleet.services.power import service as power
from labfleet.services.power.service import PowerPolicy
from labfleet.services.reservations import service as reservations
from tests.power_fakes import FakeHardware
from tests.services.flashing.rig import ANA, BOB, POLICY, FlashRig
from tests.services.flashing.rig import flash_rig as flash_rig


async def references(rig: FlashRig, artifact_id: int) -> set[tuple[str, int]]:
    async with rig.sessions() as session:
        rows = await session.execute(
            select(ArtifactReference.holder_kind, ArtifactReference.holder_id).where(
                ArtifactReference.artifact_id == artifact_id
            )
        )
        return {(row[0], row[1]) for row in rows}


async def flash_alert(rig: FlashRig, board_id: int) -> Alert | None:
    async with rig.sessions() as session:
        stmt = select(Alert).where(
            Alert.resource_id == board_id, Alert.kind == flashing.FLASH_FAILED, Alert.state != "resolved"
        )
        return (await session.scalars(stmt)).first()


async def test_a_flash_that_boots_sets_the_firmware_and_the_known_good_image(flash_rig: FlashRig) -> None:
    # Validates: 6.2, 6.3, 6.5
    rig = flash_rig
    board = await rig.board()
    image = await rig.artifact(os.urandom(70_000), commit="abc123")
    events = rig.bus.subscribe([f"board:{board.id}"])

    job = await rig.request(board.id, image.id)
    assert (job.status, job.previous_status, job.boot_check, job.target_version) == (
        "queued",
        "online",
        True,
        "abc123",
    )
    assert (await rig.fresh_board(board.id)).status == "flashing"
    assert await references(rig, image.id) == {("flash-job", job.id)}

    [done] = await rig.worker().run_once()

    assert done.status == "succeeded", done.error
    assert (done.phase, done.bytes_done, done.bytes_total, done.attempt) == ("done", 70_000, 70_000, 1)
    steps = [(s["step"], s["status"]) for s in done.detail["steps"]]
    for step in ("stage", "write", "verify", "boot"):
        assert (step, "succeeded") in steps
    after = await rig.fresh_board(board.id)
    assert (after.status, after.firmware_version, after.known_good_artifact_id) == (
        "online",
        "abc123",
        image.id,
    )
    assert rig.hardware.stations[board.id].holds is not None
    assert rig.hardware.outlets[board.id].calls == ["off", "on"]
    assert await references(rig, image.id) == {("board", board.id)}
    seen = []
    while (event := await events.get(timeout=0)) is not None:
        seen.append(event.data.get("type"))
    assert "flash-progress" in seen and seen[-1] == "flash"


async def test_a_flash_without_a_boot_check_is_not_yet_known_good(flash_rig: FlashRig) -> None:
    """Known good means seen booting: a verified write alone (a pipeline's, whose boot stage then
    watches the boot) keeps the board's known-good image until ``record_known_good``."""
    rig = flash_rig
    board = await rig.board()
    good = await rig.artifact(os.urandom(10_000), commit="good")
    await rig.request(board.id, good.id)
    [first] = await rig.worker().run_once()
    assert first.status == "succeeded", first.error
    new = await rig.artifact(os.urandom(10_000), commit="new")
    await rig.request(board.id, new.id, boot_check=False)
    [done] = await rig.worker().run_once()
    assert done.status == "succeeded", done.error
    after = await rig.fresh_board(board.id)
    assert (after.firmware_version, after.known_good_artifact_id) == ("new", good.id)
    assert await references(rig, good.id) == {("board", board.id)}
    async with rig.sessions() as session:
        await flashing.record_known_good(session=session, board_id=board.id, artifact_id=new.id)
        await session.commit()
    assert (await rig.fresh_board(board.id)).known_good_artifact_id == new.id
    assert await references(rig, new.id) == {("board", board.id)}
    assert await references(rig, good.id) == set()


async def test_a_failed_verify_rolls_back_to_the_known_good_image(flash_rig: FlashRig) -> None:
    # Validates: 6.3, 6.4
    rig = flash_rig
    board = await rig.board()
    good = await rig.artifact(os.urandom(5000), commit="good")
    bad = await rig.artifact(os.urandom(6000), commit="bad")
    rig.hardware.corrupting.add(bad.sha256)
    await rig.request(board.id, good.id)
    await rig.worker().run_once()

    job = await rig.request(board.id, bad.id)
    assert job.rollback_artifact_id == good.id
    [done] = await rig.worker().run_once()

    assert done.status == "rolled_back"
    assert done.error is not None and "does not hold it" in done.error and "written back" in done.error
    after = await rig.fresh_board(board.id)
    assert (after.status, after.firmware_version, after.known_good_artifact_id) == ("online", "good", good.id)
    station = rig.hardware.stations[board.id]
    assert station.written == [good.sha256, bad.sha256, good.sha256]
    assert station.holds is not None and station.holds.sha256 == good.sha256
    assert await references(rig, bad.id) == set()
    assert await references(rig, good.id) == {("board", board.id)}
    assert await flash_alert(rig, board.id) is None


async def test_a_board_that_does_not_boot_and_has_no_known_good_image_fails_with_an_alert(
    flash_rig: FlashRig,
) -> None:
    # Validates: 6.4, 6.5
    rig = flash_rig
    board = await rig.board(status="degraded")
    bad = await rig.artifact(os.urandom(3000), commit="panics")
    rig.hardware.unbootable.add(bad.sha256)
    await rig.request(board.id, bad.id)

    [done] = await rig.worker().run_once()

    assert done.status == "failed"
    assert done.error is not None and "did not boot" in done.error and "no known-good" in done.error
    after = await rig.fresh_board(board.id)
    assert (after.status, after.firmware_version, after.known_good_artifact_id) == ("failed", None, None)
    alert = await flash_alert(rig, board.id)
    assert alert is not None and alert.severity == "critical"


async def test_a_board_being_flashed_refuses_another_flash_reservations_and_power(
    flash_rig: FlashRig,
) -> None:
    # Validates: 6.2
    rig = flash_rig
    board = await rig.board()
    image = await rig.artifact(os.urandom(100))
    job = await rig.request(board.id, image.id)

    with pytest.raises(Conflict, match="being flashed"):
        await rig.request(board.id, image.id, actor=BOB)
    async with rig.sessions() as session:
        with pytest.raises(Conflict, match="flashing"):
            await reservations.reserve(
                session=session, actor=ANA, data=ReservationCreate(board_id=board.id, purpose="test")
            )
        hardware = FakeHardware()
        hardware.board(board.id)
        with pytest.raises(Conflict, match="being flashed"):
            await power.switch(
                session=session,
                actor=ANA,
                hardware=hardware,
                board_id=board.id,
                state="on",
                policy=PowerPolicy(),
            )
    [done] = await rig.worker().run_once()
    assert done.id == job.id and done.status == "succeeded"
    assert (await rig.fresh_board(board.id)).status == "online"


async def test_only_the_holder_of_a_reservation_may_flash_the_board(flash_rig: FlashRig) -> None:
    # Validates: 6.2
    rig = flash_rig
    board = await rig.board()
    image = await rig.artifact(os.urandom(100))
    async with rig.sessions() as session:
        await reservations.reserve(
            session=session, actor=BOB, data=ReservationCreate(board_id=board.id, purpose="bob's tests")
        )
        await session.commit()

    with pytest.raises(Conflict, match="held by reservation"):
        await rig.request(board.id, image.id, actor=ANA)
    job = await rig.request(board.id, image.id, actor=BOB)
    assert job.status == "queued"


async def test_the_artifact_must_exist_and_match_the_boards_architecture(flash_rig: FlashRig) -> None:
    # Validates: 6.1
    rig = flash_rig
    board = await rig.board()
    x86 = await rig.artifact(os.urandom(100), architecture="x86_64")
    with pytest.raises(Invalid, match="x86_64"):
        await rig.request(board.id, x86.id)
    with pytest.raises(Invalid, match="no artifact"):
        await rig.request(board.id, 999_999)
    for status in ("maintenance", "decommissioned", "failed"):
        other = await rig.board(status=status)
        arm = await rig.artifact(os.urandom(100))
        with pytest.raises(Conflict, match="refuses a flash"):
            await rig.request(other.id, arm.id)
    failed = await rig.board(status="failed")
    job = await rig.request(failed.id, (await rig.artifact(os.urandom(10))).id, force=True)
    assert job.previous_status == "failed"
    assert (await rig.fresh_board(failed.id)).status == "flashing"


async def _die_mid_flash(rig: FlashRig, job_id: int) -> None:
    """A worker claims the job and dies: its lease is left to expire."""
    async with rig.sessions() as session:
        claimed = await flashing.claim_next(session=session, worker="dead:1:x", policy=POLICY)
        assert claimed is not None and claimed.id == job_id
        await session.execute(
            update(FlashJob)
            .where(FlashJob.id == job_id)
            .values(lease_expires_at=utcnow() - timedelta(seconds=1))
        )
        await session.commit()


async def test_a_job_whose_worker_died_runs_again_from_the_start(flash_rig: FlashRig) -> None:
    # Validates: 6.2 (durable work: a killed process loses nothing)
    rig = flash_rig
    board = await rig.board()
    image = await rig.artifact(os.urandom(2000), commit="v2")
    job = await rig.request(board.id, image.id)
    await _die_mid_flash(rig, job.id)
    assert (await rig.job(job.id)).status == "running"

    [done] = await rig.worker().run_once()

    assert (done.status, done.attempt) == ("succeeded", 2)
    steps = [(s["attempt"], s["step"]) for s in done.detail["steps"]]
    assert (1, "lease-expired") in steps and (2, "write") in steps
    assert (await rig.fresh_board(board.id)).firmware_version == "v2"


async def test_a_job_out_of_attempts_is_rolled_back_or_failed(flash_rig: FlashRig) -> None:
    # Validates: 6.4 (never left running, the board never left flashing)
    rig = flash_rig
    good = await rig.artifact(os.urandom(500), commit="good")
    new = await rig.artifact(os.urandom(600), commit="new")
    with_known_good = await rig.board()
    await rig.request(with_known_good.id, good.id)
    await rig.worker().run_once()
    without = await rig.board()

    for board, expected_job, expected_board in (
        (with_known_good, "rolled_back", "online"),
        (without, "failed", "failed"),
    ):
        job = await rig.request(board.id, new.id)
        for _ in range(POLICY.max_attempts):
            await _die_mid_flash(rig, job.id)
            await rig.worker().recover()
        done = await rig.job(job.id)
        if expected_job == "rolled_back":
            assert (done.status, done.mode) == ("queued", "rollback")
            [done] = await rig.worker().run_once()
        assert done.status == expected_job, done.error
        assert done.error is not None and "attempts used" in done.error
        after = await rig.fresh_board(board.id)
        assert after.status == expected_board
        assert after.firmware_version == ("good" if board is with_known_good else None)
    assert await flash_alert(rig, without.id) is not None


# -- property 15


OUTCOMES = st.sampled_from(["ok", "corrupt", "unbootable"])


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    plan=st.lists(st.tuples(OUTCOMES, st.booleans()), min_size=1, max_size=4),
    start=st.sampled_from(["online", "degraded", "offline"]),
)
async def test_property_15_board_flashing_locks_board(
    flash_rig: FlashRig, plan: list[tuple[str, bool]], start: str
) -> None:
    # Validates: 6.2 (property 15): for any sequence of flashes and outcomes, while a job is not
    # finished the board is flashing and refuses reservations, power actions and other flashes;
    # once it has finished, the board is never left flashing.
    rig = flash_rig
    board = await rig.board(status=start)
    outlet_hw = FakeHardware()
    outlet_hw.board(board.id)
    checked: list[int] = []

    async def refuses_everything() -> None:
        assert (await rig.fresh_board(board.id)).status == "flashing"
        with pytest.raises(Conflict):
            await rig.request(board.id, image.id, actor=BOB)
        async with rig.sessions() as session:
            with pytest.raises(Conflict):
                await reservations.reserve(
                    session=session, actor=BOB, data=ReservationCreate(board_id=board.id, purpose="p")
                )
            with pytest.raises(Conflict):
                await power.cycle(session=session, actor=BOB, hardware=outlet_hw, board_id=board.id)
        checked.append(1)

    firmware = None
    for n, (outcome, check_while_queued) in enumerate(plan):
        image = await rig.artifact(os.urandom(256 + n), commit=f"v{n}")
        if outcome == "corrupt":
            rig.hardware.corrupting.add(image.sha256)
        elif outcome == "unbootable":
            rig.hardware.unbootable.add(image.sha256)
        before = await rig.fresh_board(board.id)
        if before.status not in ("online", "degraded", "offline"):
            with pytest.raises(Conflict):
                await rig.request(board.id, image.id)
            break
        job = await rig.request(board.id, image.id)
        if check_while_queued:
            await refuses_everything()
        rig.hardware.station(board.id).during_write = refuses_everything
        [done] = await rig.worker().run_once()
        rig.hardware.station(board.id).during_write = None

        after = await rig.fresh_board(board.id)
        assert after.status != "flashing"
        assert done.id == job.id and done.status in ("succeeded", "failed", "rolled_back")
        if outcome == "ok":
            assert done.status == "succeeded"
            firmware = f"v{n}"
            assert after.status == before.status or (before.status == "offline" and after.status == "online")
        elif before.known_good_artifact_id is not None:
            assert done.status == "rolled_back"
            assert after.status == before.status
        else:
            assert (done.status, after.status) == ("failed", "failed")
        assert after.firmware_version == firmware
    assert checked
