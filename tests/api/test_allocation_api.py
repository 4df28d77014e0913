"""Reservations with an ``auto`` target through the API, on both backends: the choice meets every
requirement, prefers the least loaded, explains itself, is stored with the reservation, and
when nothing fits says why (422) or what else to try (409).

Validates: 11.3, 11.4, 13.2, 13.3, 13.4, 13.5
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.db.base import utcnow
from labfleet.db.models import (
    Board,
    BoardHealth,
    BoardLabel,
    BoardPeripheral,
    Host,
    HostLabel,
    Reservation,
    UtilizationSample,
)
from labfleet.services.reservations import service as reservation_service

URL = "/api/v1/reservations"
X86 = {"x86_64": ["pc", "q35"], "i386": ["pc"], "arm64": ["virt"]}


async def add_host(
    session: AsyncSession,
    name: str,
    *,
    native: str | None = "x86_64",
    kvm: bool = True,
    machine_types: dict[str, list[str]] | None = None,
    cores: int = 8,
    memory_mb: int = 16384,
    labels: dict[str, str] | None = None,
    **fields: Any,
) -> int:
    host = Host(
        hostname=name,
        address=f"{name}.lab",
        ssh_user="root",
        libvirt_uri=f"qemu+ssh://root@{name}.lab/system",
        cpu_cores=cores,
        memory_mb=memory_mb,
        storage_gb=100.0,
        kvm=kvm,
        native_architecture=native,
        machine_types=X86 if machine_types is None else machine_types,
        labels=[HostLabel(key=k, value=v) for k, v in (labels or {}).items()],
        **fields,
    )
    session.add(host)
    await session.commit()
    return host.id


async def add_board(
    session: AsyncSession,
    name: str,
    *,
    board_type: str = "rpi4",
    architecture: str = "arm64",
    peripherals: tuple[str, ...] = (),
    labels: dict[str, str] | None = None,
    health: BoardHealth | None = None,
    **fields: Any,
) -> int:
    board = Board(
        name=name,
        board_type=board_type,
        architecture=architecture,
        serial_number=f"sn-{name}",
        labels=[BoardLabel(key=k, value=v) for k, v in (labels or {}).items()],
        peripherals=[BoardPeripheral(name=p) for p in peripherals],
        health=health,
        **fields,
    )
    session.add(board)
    await session.commit()
    return board.id


def auto_host(**fields: Any) -> dict[str, Any]:
    return {"purpose": "boot test", "target": {"auto": "host", "architecture": "x86_64", **fields}}


def auto_board(**fields: Any) -> dict[str, Any]:
    return {"purpose": "board test", "target": {"auto": "board", "architecture": "arm64", **fields}}


def candidates(decision: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in decision["explanation"]["candidates"]}


def codes(candidate: dict[str, Any]) -> set[str]:
    return {r["code"] for r in candidate["reasons"]}


async def count(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(Reservation)) or 0)


async def test_auto_host_picks_the_least_loaded_fitting_host_and_explains(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    busy = await add_host(session, "kvm-busy")
    idle = await add_host(session, "kvm-idle")
    await add_host(session, "kvm-arm", native="arm64", machine_types={"arm64": ["virt"]})
    pinned = await client.post(URL, json={"purpose": "load", "host_id": busy, "vcpus": 6, "memory_mb": 8192})
    assert pinned.status_code == 201, pinned.text
    assert (pinned.json()["auto"], pinned.json()["decision"]) == (None, None)

    made = await client.post(URL, params={"explain": "true"}, json=auto_host(vcpus=2, memory_mb=2048))
    assert made.status_code == 201, made.text
    body = made.json()
    assert (body["host_id"], body["auto"], body["vcpus"], body["memory_mb"]) == (idle, "host", 2, 2048)
    assert made.headers["location"] == body["url"]
    decision = body["decision"]
    assert decision["chosen_id"] == idle
    assert decision["explanation"]["outcome"] == "assigned"
    seen = candidates(decision)
    assert seen["kvm-idle"]["rank"] == 1 and seen["kvm-busy"]["rank"] == 2
    assert seen["kvm-idle"]["score"]["total"] > seen["kvm-busy"]["score"]["total"]
    assert {p["name"] for p in seen["kvm-idle"]["score"]["parts"]} == {"cpu", "memory", "disk", "utilization"}
    # arm64 native, x86_64 neither native nor offered: excluded for good, and said why.
    assert codes(seen["kvm-arm"]) == {"architecture"}
    assert "cannot run x86_64" in seen["kvm-arm"]["reasons"][0]["message"]

    # Stored with the reservation: shown again later, only when asked.
    plain = (await client.get(body["url"])).json()
    assert (plain["auto"], plain["decision"]) == ("host", None)
    again = (await client.get(body["url"], params={"explain": "true"})).json()
    assert again["decision"] == decision
    row = await session.get(Reservation, body["id"], populate_existing=True)
    assert row is not None and row.decision == decision

    # Without ?explain the answer is the reservation only.
    quiet = await client.post(URL, json=auto_host(vcpus=1, memory_mb=512))
    assert quiet.status_code == 201 and quiet.json()["decision"] is None


async def test_equal_hosts_share_the_work(client: httpx.AsyncClient, session: AsyncSession) -> None:
    # Validates: 13.4
    first, second = await add_host(session, "kvm-a"), await add_host(session, "kvm-b")
    chosen = [
        (await client.post(URL, json=auto_host(vcpus=2, memory_mb=1024))).json()["host_id"] for _ in range(4)
    ]
    assert chosen == [first, second, first, second]


async def test_kvm_required_excludes_hosts_without_it_or_not_native(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    await add_host(session, "tcg-x86", kvm=False)
    await add_host(session, "kvm-arm", native="arm64", kvm=True)  # x86_64 only emulated there
    await add_host(session, "unknown-native", native=None, kvm=True)  # registered before 0005

    never = await client.post(URL, json=auto_host(kvm=True))
    assert never.status_code == 422, never.text
    assert never.json()["field"] == "target.kvm"
    assert never.json()["detail"] == "no host in the pool runs x86_64 with KVM"

    # Without KVM any of them will do, native first.
    tcg = await client.post(URL, params={"explain": "true"}, json=auto_host(kvm=False))
    assert tcg.status_code == 201
    assert candidates(tcg.json()["decision"])["tcg-x86"]["rank"] == 1

    kvm = await add_host(session, "kvm-x86", kvm=True)
    made = await client.post(URL, params={"explain": "true"}, json=auto_host(kvm=True))
    assert made.status_code == 201, made.text
    assert made.json()["host_id"] == kvm
    seen = candidates(made.json()["decision"])
    assert codes(seen["tcg-x86"]) == {"no_kvm"}
    assert codes(seen["kvm-arm"]) == {"no_kvm"}
    assert "only emulated" in seen["kvm-arm"]["reasons"][0]["message"]
    assert codes(seen["unknown-native"]) == {"no_kvm"}


async def test_a_host_over_its_utilization_threshold_is_excluded(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    hot = await add_host(session, "kvm-hot", cores=64, memory_mb=262144)
    cool = await add_host(session, "kvm-cool")
    now = utcnow()
    session.add_all(
        [
            # The latest sample counts, not an older calmer one.
            UtilizationSample(
                host_id=hot,
                taken_at=now - timedelta(minutes=10),
                cpu_pct=5,
                memory_pct=5,
                storage_pct=5,
                running_vms=0,
            ),
            UtilizationSample(
                host_id=hot, taken_at=now, cpu_pct=97.5, memory_pct=40, storage_pct=10, running_vms=9
            ),
            UtilizationSample(
                host_id=cool, taken_at=now, cpu_pct=80, memory_pct=20, storage_pct=10, running_vms=1
            ),
        ]
    )
    await session.commit()
    made = await client.post(URL, params={"explain": "true"}, json=auto_host(vcpus=2))
    assert made.status_code == 201, made.text
    assert made.json()["host_id"] == cool
    seen = candidates(made.json()["decision"])
    assert codes(seen["kvm-hot"]) == {"over_threshold"}
    assert "cpu at 97.5%" in seen["kvm-hot"]["reasons"][0]["message"]
    # 80% is within 10 points of the 85% threshold: a capacity warning, shown without ?explain too.
    warnings = made.json()["warnings"]
    assert [w["code"] for w in warnings] == ["near_threshold"]
    assert (await client.get(made.json()["url"])).json()["warnings"] == warnings


async def test_near_full_capacity_is_warned(client: httpx.AsyncClient, session: AsyncSession) -> None:
    # Validates: 11.4
    await add_host(session, "kvm-small", cores=4)
    made = await client.post(URL, json=auto_host(vcpus=4, memory_mb=1024))
    assert made.status_code == 201
    assert [w["code"] for w in made.json()["warnings"]] == ["capacity_warning"]
    assert "vCPUs 100% reserved after this VM" in made.json()["warnings"][0]["message"]


async def test_nothing_fits_now_is_409_with_alternatives(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    # Validates: 11.4
    full = await add_host(session, "kvm-full", cores=4)
    resting = await add_host(session, "kvm-resting", status="maintenance")
    assert (
        await client.post(URL, json={"purpose": "fill", "host_id": full, "vcpus": 3, "memory_mb": 1024})
    ).status_code == 201
    before = await count(session)

    refused = await client.post(URL, params={"explain": "true"}, json=auto_host(vcpus=2))
    assert refused.status_code == 409, refused.text
    problem = refused.json()
    assert problem["field"] == "target"
    assert problem["detail"].startswith("no host can take it now: 2 host(s) could take it, none now")
    alternatives = {a["id"]: a for a in problem["alternatives"]}
    assert set(alternatives) == {full, resting}
    assert [r["code"] for r in alternatives[full]["lacks"]] == ["insufficient_cpu"]
    assert alternatives[full]["free_vcpus"] == 1
    assert [r["code"] for r in alternatives[resting]["lacks"]] == ["maintenance"]
    # The soonest to pass first: reservations end on their own, maintenance needs someone.
    assert [a["id"] for a in problem["alternatives"]] == [full, resting]
    assert problem["decision"]["explanation"]["outcome"] == "unavailable"
    assert await count(session) == before

    # The decision comes with ?explain only; the alternatives always.
    plain = (await client.post(URL, json=auto_host(vcpus=2))).json()
    assert "decision" not in plain and len(plain["alternatives"]) == 2


async def test_nothing_could_ever_fit_is_422_naming_the_field(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    await add_host(session, "kvm-1", cores=8, labels={"rack": "r1"})
    for target, field, detail in (
        ({"architecture": "riscv64"}, "target.architecture", "no host in the pool runs riscv64"),
        ({"vcpus": 64}, "target.vcpus", "is large enough for 64 vCPUs"),
        ({"memory_mb": 10**6}, "target.memory_mb", "1000000 MB memory"),
        ({"labels": {"rack": "r2"}}, "target.labels", "has the labels rack=r2"),
    ):
        refused = await client.post(URL, json=auto_host(**target))
        assert refused.status_code == 422, (target, refused.text)
        assert refused.json()["field"] == field
        assert detail in refused.json()["detail"]
    assert await count(session) == 0


async def test_auto_board_meets_type_and_peripherals(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    await add_board(session, "rpi-plain")
    wired = await add_board(session, "rpi-wired", peripherals=("sd-mux", "usb-ethernet"))
    await add_board(
        session, "bbb-wired", board_type="beaglebone", architecture="arm", peripherals=("sd-mux",)
    )

    made = await client.post(
        URL, params={"explain": "true"}, json=auto_board(board_type="rpi4", peripherals=["sd-mux"])
    )
    assert made.status_code == 201, made.text
    body = made.json()
    assert (body["board_id"], body["auto"], body["host_id"]) == (wired, "board", None)
    seen = candidates(body["decision"])
    assert codes(seen["rpi-plain"]) == {"peripherals"}
    assert seen["rpi-plain"]["reasons"][0]["message"] == "lacks sd-mux"
    assert codes(seen["bbb-wired"]) == {"architecture", "board_type"}

    for target, field in (
        ({"board_type": "jetson"}, "target.board_type"),
        ({"peripherals": ["jtag"]}, "target.peripherals"),
        ({"architecture": "riscv64"}, "target.architecture"),
        ({"labels": {"site": "lab-2"}}, "target.labels"),
    ):
        refused = await client.post(URL, json=auto_board(**target))
        assert refused.status_code == 422, (target, refused.text)
        assert refused.json()["field"] == field


async def test_a_held_board_is_skipped_and_the_least_used_preferred(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    # Validates: 11.5, 13.3, 13.4
    held = await add_board(session, "rpi-1")
    used = await add_board(session, "rpi-2")
    fresh = await add_board(session, "rpi-3")
    await add_board(session, "rpi-sick", health=BoardHealth(reachable=False, consecutive_failures=3))
    assert (await client.post(URL, json={"purpose": "hold", "board_id": held})).status_code == 201
    earlier = (await client.post(URL, json={"purpose": "earlier", "board_id": used})).json()
    assert (await client.post(f"{earlier['url']}/release")).status_code == 200

    made = await client.post(URL, params={"explain": "true"}, json=auto_board())
    assert made.status_code == 201, made.text
    assert made.json()["board_id"] == fresh
    seen = candidates(made.json()["decision"])
    assert codes(seen["rpi-1"]) == {"reserved"}
    assert "held by reservation #" in seen["rpi-1"]["reasons"][0]["message"]
    assert codes(seen["rpi-sick"]) == {"unreachable"}
    assert seen["rpi-2"]["rank"] == 2
    assert "1 use(s)" in next(p["detail"] for p in seen["rpi-2"]["score"]["parts"] if p["name"] == "usage")


async def test_two_auto_board_requests_for_one_fitting_board(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    # Validates: 11.4, 11.5
    only = await add_board(session, "rpi-jtag", peripherals=("jtag",))
    await add_board(session, "rpi-plain")
    first = await client.post(URL, json=auto_board(peripherals=["jtag"]))
    second = await client.post(URL, json=auto_board(peripherals=["jtag"]))
    assert (first.status_code, second.status_code) == (201, 409), second.text
    assert first.json()["board_id"] == only
    problem = second.json()
    assert problem["detail"].startswith("no board can take it now: 1 board(s) match, none is free now")
    [alternative] = problem["alternatives"]
    assert (alternative["id"], alternative["available_now"]) == (only, False)
    assert alternative["held_by"] == f"reservation #{first.json()['id']} (t-admin)"
    assert alternative["held_until"] is not None
    assert [r["code"] for r in alternative["lacks"]] == ["reserved"]


async def test_a_choice_taken_meanwhile_moves_on_to_the_next(
    client: httpx.AsyncClient, session: AsyncSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another request reserves the chosen board between the choice and the lock.
    first = await add_board(session, "rpi-a")
    second = await add_board(session, "rpi-b")
    real = reservation_service._check_board
    raced: list[int] = []

    async def racing(s: AsyncSession, board_id: int, now: Any) -> None:
        if not raced:
            raced.append(board_id)
            s.add(
                Reservation(
                    board_id=board_id, owner="rival", purpose="ci", expires_at=now + timedelta(hours=1)
                )
            )
            await s.flush()
        await real(s, board_id, now)

    monkeypatch.setattr(reservation_service, "_check_board", racing)
    made = await client.post(URL, params={"explain": "true"}, json=auto_board())
    assert made.status_code == 201, made.text
    assert raced == [first]
    assert made.json()["board_id"] == second
    decision = made.json()["decision"]
    assert decision["chosen_id"] == second
    [refused] = decision["refused"]
    assert refused["id"] == first
    assert "is held by reservation #" in refused["lacks"][0]["message"]


async def test_when_every_choice_is_taken_meanwhile_it_is_409(
    client: httpx.AsyncClient, session: AsyncSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    boards = [await add_board(session, f"rpi-{n}") for n in range(7)]
    tried: list[int] = []

    async def always_taken(s: AsyncSession, board_id: int, now: Any) -> None:
        tried.append(board_id)
        raise reservation_service.Conflict(f"board {board_id} was reserved by someone else just now")

    monkeypatch.setattr(reservation_service, "_check_board", always_taken)
    refused = await client.post(URL, json=auto_board())
    assert refused.status_code == 409
    assert len(tried) == reservation_service.MAX_TRIES
    assert tried == boards[: reservation_service.MAX_TRIES]
    assert "taken by others meanwhile" in refused.json()["detail"]
    assert [a["id"] for a in refused.json()["alternatives"]] == tried
    assert await count(session) == 0

    # Fewer candidates than tries: once all are refused, nothing is left to choose.
    tried.clear()
    for ident in boards[2:]:
        await session.execute(update(Board).where(Board.id == ident).values(status="maintenance"))
    await session.commit()
    again = await client.post(URL, json=auto_board())
    assert again.status_code == 409
    assert tried == boards[:2]


async def test_targets_are_validated(client: httpx.AsyncClient, session: AsyncSession) -> None:
    host = await add_host(session, "kvm-1")
    for body, field in (
        ({**auto_host(), "host_id": host}, "body"),
        ({**auto_host(), "vcpus": 2}, "body"),
        ({"purpose": "x", "target": {"auto": "vm", "architecture": "x86_64"}}, "target"),
        (auto_host(vcpus=0), "target.host.vcpus"),
        (auto_board(vcpus=2), "target.board.vcpus"),
        (auto_host(architecture="pdp11"), "target.host.architecture"),
    ):
        refused = await client.post(URL, json=body)
        assert refused.status_code == 422, body
        assert refused.json()["field"] == field, refused.json()
    assert "auto target" in (await client.post(URL, json={**auto_host(), "host_id": host})).json()["detail"]
    # Aliases are taken, as everywhere.
    made = await client.post(URL, json=auto_host(architecture="amd64"))
    assert made.status_code == 201 and made.json()["host_id"] == host
