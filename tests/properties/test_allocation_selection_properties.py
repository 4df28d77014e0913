"""Properties 9, 11, 14, 17 and 18: choosing QEMU hosts and boards (R9.4, R11.3, R12.1, R13.2-13.4).

Pure: any pool of candidates in any state, any request, no database. The oracle functions
below restate each requirement from the candidate's facts, independently of the code under
test, so a chosen resource is checked against the requirement itself.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from labfleet.schemas.enums import Architecture, BoardStatus, ServerStatus
from labfleet.selection import (
    BoardCandidate,
    BoardDecision,
    BoardRequest,
    Exclusion,
    HostCandidate,
    HostDecision,
    HostRequest,
    HostUtilization,
    Outcome,
    select_board,
    select_host,
)

PROPERTY = settings(max_examples=200)
ARCHES = [Architecture.x86_64, Architecture.arm64, Architecture.riscv64]
EPOCH = datetime(2024, 6, 1, tzinfo=UTC)
labels = st.dictionaries(st.sampled_from(["rack", "team"]), st.sampled_from(["a", "b"]), max_size=2)
# Skewed low so that many hosts are under their threshold, with every level still reachable.
percentages = st.floats(0, 60) | st.floats(0, 100)
utilizations = st.none() | st.builds(HostUtilization, percentages, percentages, percentages)


def _arch_sets(wanted: Architecture, max_size: int) -> st.SearchStrategy[frozenset[Architecture]]:
    """Often the wanted architecture alone, else any set: so pools both match and miss."""
    return st.just(frozenset({wanted})) | st.frozensets(st.sampled_from(ARCHES), max_size=max_size)


def _label_sets(wanted: Mapping[str, str]) -> st.SearchStrategy[dict[str, str]]:
    return st.just(dict(wanted)) | labels


# Made once, not at every draw: a new strategy costs Hypothesis far more than a draw from it.
pool_ids = st.lists(st.integers(1, 1000), unique=True, max_size=12)
# Now and then not detected yet (None).
host_cores = st.sampled_from([None, 4, 8, 16, 64, 64])
host_memory = st.sampled_from([None, 4096, 16384, 65536, 65536])
host_storage = st.sampled_from([None, 50.0, 500.0, 500.0])
host_statuses = st.sampled_from([ServerStatus.online] * 3 + list(ServerStatus))
host_thresholds = st.sampled_from([50.0, 85.0, 100.0])
reservation_counts = st.integers(0, 6)
reserved_vcpus = {cores: st.integers(0, (cores or 8) + 2) for cores in (None, 4, 8, 16, 64)}
reserved_memory = {memory: st.integers(0, (memory or 4096) + 1024) for memory in (None, 4096, 16384, 65536)}
reserved_disk = {storage: st.floats(0, (storage or 50.0) + 10) for storage in (None, 50.0, 500.0)}


@st.composite
def host_pools(draw: st.DrawFn, request: HostRequest) -> list[HostCandidate]:
    """Up to 12 hosts with unique ids, in every status, size, fill level and utilization."""
    native, emulated = _arch_sets(request.architecture, 1), _arch_sets(request.architecture, 3)
    host_labels = _label_sets(request.labels)
    pool = []
    for i in draw(pool_ids):
        cores, memory, storage = draw(host_cores), draw(host_memory), draw(host_storage)
        pool.append(
            HostCandidate(
                id=i,
                name=f"kvm-{i}",
                status=draw(host_statuses),
                native_architectures=draw(native),
                emulated_architectures=draw(emulated),
                kvm=draw(st.booleans()),
                cpu_cores=cores,
                memory_mb=memory,
                storage_gb=storage,
                reserved_vcpus=draw(reserved_vcpus[cores]),
                reserved_memory_mb=draw(reserved_memory[memory]),
                reserved_disk_gb=draw(reserved_disk[storage]),
                reservations=draw(reservation_counts),
                utilization=draw(utilizations),
                utilization_threshold_pct=draw(host_thresholds),
                labels=draw(host_labels),
            )
        )
    return pool


host_requests = st.builds(
    HostRequest,
    architecture=st.sampled_from(ARCHES),
    vcpus=st.integers(1, 4) | st.integers(1, 16),
    memory_mb=st.sampled_from([512, 2048, 8192, 32768]),
    disk_gb=st.sampled_from([0.0, 10.0, 100.0]),
    kvm_required=st.booleans(),
    labels=st.dictionaries(st.sampled_from(["rack", "team"]), st.sampled_from(["a", "b"]), max_size=1),
)


@st.composite
def host_cases(draw: st.DrawFn) -> tuple[HostRequest, list[HostCandidate]]:
    """A pool and a request, sometimes pinned to one of the pool's hosts (or to a stranger)."""
    request = draw(host_requests)
    pool = draw(host_pools(request))
    return replace(request, host_id=draw(_pins([c.id for c in pool]))), pool


def _pins(ids: list[int]) -> st.SearchStrategy[int | None]:
    """Mostly ``auto``; else one of the pool, or an id that is not in it."""
    return st.sampled_from(["auto", "auto", "pool", "stranger"]).flatmap(
        lambda kind: (
            st.none()
            if kind == "auto" or (kind == "pool" and not ids)
            else st.sampled_from(ids)
            if kind == "pool"
            else st.just(5000)
        )
    )


def _host_fits(c: HostCandidate, request: HostRequest) -> bool:
    """Every requirement of R11.3, R13.2, R9.4 and R12.1, restated from the facts."""
    arch = request.architecture
    u = c.utilization
    return (
        c.status in (ServerStatus.online, ServerStatus.degraded)
        and (arch in c.native_architectures or arch in c.emulated_architectures)
        and (not request.kvm_required or (arch in c.native_architectures and c.kvm))
        and all(c.labels.get(k) == v for k, v in request.labels.items())
        and c.cpu_cores is not None
        and c.cpu_cores - c.reserved_vcpus >= request.vcpus
        and c.memory_mb is not None
        and c.memory_mb - c.reserved_memory_mb >= request.memory_mb
        and (
            request.disk_gb == 0
            or (c.storage_gb is not None and c.storage_gb - c.reserved_disk_gb >= request.disk_gb)
        )
        and (u is None or max(u.cpu_pct, u.memory_pct, u.storage_pct) <= c.utilization_threshold_pct)
    )


def _check_explanation(decision: HostDecision | BoardDecision, ids: list[int]) -> None:
    explanation = decision.explanation
    assert sorted(r.id for r in explanation.candidates) == sorted(ids)
    assert json.loads(json.dumps(decision.as_dict()))["explanation"]["outcome"] == decision.outcome.value
    for report in explanation.candidates:
        assert report.excluded == (report.score is None)
        assert report.excluded == (report.rank is None)


@PROPERTY
@given(case=host_cases(), hot_metric=st.integers(0, 2), excess=st.floats(0.01, 50))
def test_property_9_host_over_its_utilization_threshold_takes_no_new_vm(
    case: tuple[HostRequest, list[HostCandidate]], hot_metric: int, excess: float
) -> None:
    # Validates: 9.4
    request, pool = case
    # A host that would be ideal but for one metric above its threshold.
    pcts = [0.0, 0.0, 0.0]
    pcts[hot_metric] = min(70.0 + excess, 100.0)
    hot = HostCandidate(
        id=9001,
        name="hot",
        status=ServerStatus.online,
        native_architectures=frozenset({request.architecture}),
        kvm=True,
        cpu_cores=1024,
        memory_mb=1 << 20,
        storage_gb=1e6,
        utilization=HostUtilization(*pcts),
        utilization_threshold_pct=70.0,
        labels=dict(request.labels),
    )
    pool = [*pool, hot]
    for pinned in (request.host_id, hot.id):
        decision = select_host(request=replace(request, host_id=pinned), candidates=pool)
        _check_explanation(decision, [c.id for c in pool])
        for c in pool:
            u = c.utilization
            if u is not None and max(u.cpu_pct, u.memory_pct, u.storage_pct) > c.utilization_threshold_pct:
                assert decision.chosen is None or decision.chosen.id != c.id
                report = decision.explanation.report(c.id)
                if not any(r.code is Exclusion.not_pinned for r in report.reasons):
                    assert Exclusion.over_threshold in {r.code for r in report.reasons}
    # Pinned to the hot host, which could take it but for its load: unavailable, not rejected.
    assert decision.outcome is Outcome.unavailable


@PROPERTY
@given(case=host_cases())
def test_property_11_host_selection_meets_requirements(case: tuple[HostRequest, list[HostCandidate]]) -> None:
    # Validates: 11.3, 13.2
    request, pool = case
    decision = select_host(request=request, candidates=pool)
    _check_explanation(decision, [c.id for c in pool])
    in_play = [c for c in pool if request.host_id is None or c.id == request.host_id]
    fitting = [c for c in in_play if _host_fits(c, request)]

    if decision.chosen is not None:
        chosen = decision.chosen
        assert _host_fits(chosen, request)
        assert decision.outcome is Outcome.assigned
        assert decision.explanation.chosen_id == chosen.id
        assert decision.explanation.report(chosen.id).rank == 1
        # KVM when any fitting host offers it for this architecture: native is preferred.
        if any(request.architecture in c.native_architectures and c.kvm for c in fitting):
            assert request.architecture in chosen.native_architectures and chosen.kvm
        assert decision.alternatives == () and decision.rejected is None
    # Complete: whenever some host fits, one is chosen.
    assert (decision.chosen is not None) == bool(fitting)
    if decision.outcome is Outcome.rejected:
        assert decision.rejected is not None
        # Nothing in play could ever take it, whatever became free or left maintenance.
        for c in in_play:
            freed = replace(
                c,
                status=ServerStatus.online,
                reserved_vcpus=0,
                reserved_memory_mb=0,
                reserved_disk_gb=0.0,
                utilization=None,
                cpu_cores=c.cpu_cores or 1 << 20,
                memory_mb=c.memory_mb or 1 << 30,
                storage_gb=c.storage_gb or 1e9,
            )
            assert c.status is ServerStatus.decommissioned or not _host_fits(freed, request)
    if decision.outcome is Outcome.unavailable:
        assert decision.rejected is None
        for alternative in decision.alternatives:
            assert alternative.id != request.host_id
            assert alternative.available_now == (alternative.lacks == ())


board_types = st.sampled_from(["rpi4", "imx8mp", "visionfive2"])
peripheral_sets = st.frozensets(st.sampled_from(["usb-ethernet", "sd-mux", "can", "hdmi-capture"]))


board_holds = st.sampled_from([False, False, False, True])
board_statuses = st.sampled_from([BoardStatus.online] * 3 + list(BoardStatus))
board_reachability = st.sampled_from([None, True, True, False])
board_failures = st.integers(0, 4)
held_minutes = st.integers(0, 600)
board_uses = st.integers(0, 20)
last_used = st.none() | st.integers(0, 10_000).map(lambda m: EPOCH - timedelta(minutes=m))


@st.composite
def board_pools(draw: st.DrawFn, request: BoardRequest) -> list[BoardCandidate]:
    """Up to 12 boards with unique ids, in every status, health, hold and use."""
    architectures = st.just(request.architecture) | st.sampled_from(ARCHES)
    types = st.just(request.board_type or "rpi4") | board_types
    peripherals = st.just(request.peripherals) | peripheral_sets
    board_labels = _label_sets(request.labels)
    pool = []
    for i in draw(pool_ids):
        held = draw(board_holds)
        pool.append(
            BoardCandidate(
                id=i,
                name=f"board-{i}",
                status=draw(board_statuses),
                architecture=draw(architectures),
                board_type=draw(types),
                peripherals=draw(peripherals),
                labels=draw(board_labels),
                reachable=draw(board_reachability),
                consecutive_failures=draw(board_failures),
                held=held,
                held_by="alice" if held else None,
                held_until=EPOCH + timedelta(minutes=draw(held_minutes)) if held else None,
                uses=draw(board_uses),
                last_used_at=draw(last_used),
            )
        )
    return pool


@st.composite
def board_cases(draw: st.DrawFn) -> tuple[BoardRequest, list[BoardCandidate]]:
    """A pool and a request, sometimes pinned to one of the pool's boards (or to a stranger)."""
    request = BoardRequest(
        architecture=draw(st.sampled_from(ARCHES)),
        board_type=draw(st.none() | board_types),
        peripherals=draw(st.frozensets(st.sampled_from(["usb-ethernet", "sd-mux", "can"]), max_size=2)),
        labels=draw(
            st.dictionaries(st.sampled_from(["rack", "team"]), st.sampled_from(["a", "b"]), max_size=1)
        ),
    )
    pool = draw(board_pools(request))
    return replace(request, board_id=draw(_pins([b.id for b in pool]))), pool


def _board_matches(b: BoardCandidate, request: BoardRequest) -> bool:
    return (
        b.status is not BoardStatus.decommissioned
        and b.architecture == request.architecture
        and (request.board_type is None or b.board_type == request.board_type)
        and request.peripherals <= b.peripherals
        and all(b.labels.get(k) == v for k, v in request.labels.items())
    )


def _board_fits(b: BoardCandidate, request: BoardRequest) -> bool:
    """R11.3, R13.3, R6.2 and R12.1, restated: it matches, is up, healthy and free."""
    return (
        _board_matches(b, request)
        and b.status in (BoardStatus.online, BoardStatus.degraded)
        and b.reachable is not False
        and not b.held
    )


@PROPERTY
@given(case=board_cases())
def test_property_14_board_selection_meets_requirements(
    case: tuple[BoardRequest, list[BoardCandidate]],
) -> None:
    # Validates: 11.3, 13.3, 6.2
    request, pool = case
    decision = select_board(request=request, candidates=pool)
    _check_explanation(decision, [b.id for b in pool])
    in_play = [b for b in pool if request.board_id is None or b.id == request.board_id]
    fitting = [b for b in in_play if _board_fits(b, request)]

    if decision.chosen is not None:
        chosen = decision.chosen
        assert _board_fits(chosen, request)
        assert chosen.status is not BoardStatus.flashing
        assert decision.explanation.report(chosen.id).rank == 1
        if any(b.status is BoardStatus.online for b in fitting):
            assert chosen.status is BoardStatus.online
    assert (decision.chosen is not None) == bool(fitting)
    matching = [b for b in in_play if _board_matches(b, request)]
    if decision.chosen is None:
        assert decision.outcome is (Outcome.unavailable if matching else Outcome.rejected)
        assert (decision.rejected is None) == bool(matching)
        for alternative in decision.alternatives:
            assert alternative.id != request.board_id
            assert _board_matches(
                next(b for b in pool if b.id == alternative.id), replace(request, board_id=None)
            )

    # Boards perfect for the request but being flashed (locked, R6.2), held, or not answering.
    perfect = BoardCandidate(
        id=0,
        name="",
        status=BoardStatus.online,
        architecture=request.architecture,
        board_type=request.board_type or "rpi4",
        peripherals=request.peripherals,
        labels=dict(request.labels),
        reachable=True,
    )
    blocked = [
        replace(perfect, id=8001, name="flashing", status=BoardStatus.flashing),
        replace(perfect, id=8002, name="held", held=True),
        replace(perfect, id=8003, name="unreachable", reachable=False),
    ]
    for pinned in (request.board_id, *(b.id for b in blocked)):
        chosen = select_board(request=replace(request, board_id=pinned), candidates=[*pool, *blocked]).chosen
        assert chosen is None or chosen.id not in {b.id for b in blocked}


@PROPERTY
@given(
    reserved=st.lists(st.integers(0, 12), min_size=2, max_size=8),
    cpu=st.lists(st.integers(0, 850).map(lambda n: n / 10), min_size=2, max_size=8),
)
def test_property_17_load_balancing_prefers_the_least_loaded_host(
    reserved: list[int], cpu: list[float]
) -> None:
    # Validates: 13.4, 13.2
    base = HostCandidate(
        id=0,
        name="",
        status=ServerStatus.online,
        native_architectures=frozenset({Architecture.x86_64}),
        kvm=True,
        cpu_cores=16,
        memory_mb=65536,
        storage_gb=500.0,
        utilization=HostUtilization(0.0, 0.0, 0.0),
    )
    request = HostRequest(architecture=Architecture.x86_64, vcpus=2, memory_mb=2048)

    # Otherwise equal but for the vCPUs already reserved: the fewest wins, ties to the lower id.
    by_reserved = [replace(base, id=i + 1, reserved_vcpus=r) for i, r in enumerate(reserved)]
    chosen = select_host(request=request, candidates=by_reserved).chosen
    assert chosen is not None
    assert chosen.reserved_vcpus == min(reserved)
    assert chosen.id == min(c.id for c in by_reserved if c.reserved_vcpus == min(reserved))

    # Otherwise equal but for the measured CPU load: the least loaded wins.
    by_cpu = [replace(base, id=i + 1, utilization=HostUtilization(p, 0.0, 0.0)) for i, p in enumerate(cpu)]
    chosen = select_host(request=request, candidates=by_cpu).chosen
    assert chosen is not None and chosen.utilization is not None
    assert chosen.utilization.cpu_pct == min(cpu)

    # Identical hosts: the one with fewer reservations, and the order of candidates never matters.
    same = [replace(base, id=i + 1, reservations=r % 3) for i, r in enumerate(reserved)]
    forward = select_host(request=request, candidates=same).chosen
    backward = select_host(request=request, candidates=same[::-1]).chosen
    assert forward == backward
    assert forward is not None and forward.reservations == min(c.reservations for c in same)


@PROPERTY
@given(
    uses=st.lists(st.integers(0, 30), min_size=2, max_size=8),
    minutes_ago=st.lists(st.none() | st.integers(0, 10_000), min_size=2, max_size=8),
)
def test_property_17_load_balancing_prefers_the_least_used_board(
    uses: list[int], minutes_ago: list[int | None]
) -> None:
    # Validates: 13.4
    base = BoardCandidate(
        id=0,
        name="",
        status=BoardStatus.online,
        architecture=Architecture.arm64,
        board_type="rpi4",
        reachable=True,
    )
    request = BoardRequest(architecture=Architecture.arm64, board_type="rpi4")

    by_uses = [replace(base, id=i + 1, uses=u) for i, u in enumerate(uses)]
    chosen = select_board(request=request, candidates=by_uses).chosen
    assert chosen is not None
    assert chosen.uses == min(uses)
    assert chosen.id == min(b.id for b in by_uses if b.uses == min(uses))

    # Equally used: the least recently used (never used first) wins, whatever the order.
    by_recency = [
        replace(base, id=i + 1, last_used_at=None if m is None else EPOCH - timedelta(minutes=m))
        for i, m in enumerate(minutes_ago)
    ]
    chosen = select_board(request=request, candidates=by_recency).chosen
    assert chosen == select_board(request=request, candidates=by_recency[::-1]).chosen
    assert chosen is not None
    if any(m is None for m in minutes_ago):
        assert chosen.last_used_at is None
    else:
        assert chosen.last_used_at == min(b.last_used_at for b in by_recency if b.last_used_at is not None)


@PROPERTY
@given(host_case=host_cases(), board_case=board_cases())
def test_property_18_maintenance_blocks_allocations(
    host_case: tuple[HostRequest, list[HostCandidate]], board_case: tuple[BoardRequest, list[BoardCandidate]]
) -> None:
    # Validates: 12.1
    host_request, hosts = host_case
    # Every host and board in maintenance, otherwise perfect for the request, even when pinned.
    perfect_host = HostCandidate(
        id=7001,
        name="resting",
        status=ServerStatus.maintenance,
        native_architectures=frozenset({host_request.architecture}),
        kvm=True,
        cpu_cores=1024,
        memory_mb=1 << 20,
        storage_gb=1e6,
        labels=dict(host_request.labels),
    )
    hosts = [*hosts, perfect_host]
    for pinned in (host_request.host_id, perfect_host.id):
        decision = select_host(request=replace(host_request, host_id=pinned), candidates=hosts)
        assert decision.chosen is None or decision.chosen.status is not ServerStatus.maintenance
    assert decision.outcome is Outcome.unavailable
    assert decision.explanation.report(perfect_host.id).reasons[0].code is Exclusion.maintenance

    board_request, boards = board_case
    perfect_board = BoardCandidate(
        id=7001,
        name="resting",
        status=BoardStatus.maintenance,
        architecture=board_request.architecture,
        board_type=board_request.board_type or "rpi4",
        peripherals=board_request.peripherals,
        labels=dict(board_request.labels),
        reachable=True,
    )
    boards = [*boards, perfect_board]
    for pinned in (board_request.board_id, perfect_board.id):
        chosen = select_board(request=replace(board_request, board_id=pinned), candidates=boards).chosen
        assert chosen is None or chosen.status is not BoardStatus.maintenance
    resting = select_board(request=replace(board_request, board_id=perfect_board.id), candidates=boards)
    assert resting.outcome is Outcome.unavailable
    assert [r.code for r in resting.explanation.report(perfect_board.id).reasons] == [Exclusion.maintenance]
