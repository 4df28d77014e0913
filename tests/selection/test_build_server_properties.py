"""Properties of build server selection (R3.2, R3.3, R2.4, R13.1, R13.4, R13.5)."""

from __future__ import annotations

import json
from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from labfleet.schemas.enums import Architecture, ServerStatus
from labfleet.selection import (
    BuildRequest,
    BuildServerCandidate,
    Exclusion,
    NoteCode,
    Outcome,
    Thresholds,
    select_build_server,
)
from tests.selection.strategies import candidate_lists, requests, thresholds


def _supports(c: BuildServerCandidate, request: BuildRequest) -> bool:
    return (
        request.architecture in c.architectures
        and c.status is not ServerStatus.decommissioned
        and all(c.labels.get(k) == v for k, v in request.labels.items())
    )


@given(request=requests, candidates=candidate_lists(), limits=thresholds)
def test_property_2_build_server_selection_meets_architecture_requirements(
    request: BuildRequest, candidates: list[BuildServerCandidate], limits: Thresholds
) -> None:
    # Validates: 3.2, 3.3
    decision = select_build_server(request=request, candidates=candidates, thresholds=limits)
    explanation = decision.explanation

    # Every candidate appears in the explanation exactly once, and it serialises to JSON.
    assert sorted(r.id for r in explanation.candidates) == sorted(c.id for c in candidates)
    assert json.loads(json.dumps(decision.as_dict()))["explanation"]["outcome"] == decision.outcome.value

    supporting = [c for c in candidates if _supports(c, request)]
    if decision.chosen is not None:
        chosen = decision.chosen
        assert request.architecture in chosen.architectures
        assert chosen.status in (ServerStatus.online, ServerStatus.degraded)
        assert chosen.disk_free_gb is None or chosen.disk_free_gb >= limits.disk_critical_gb
        assert all(chosen.labels.get(k) == v for k, v in request.labels.items())
        assert explanation.chosen_id == chosen.id
        assert explanation.report(chosen.id).rank == 1
    if not supporting:
        assert decision.outcome is Outcome.rejected
        assert decision.rejected is not None
        assert decision.chosen is None
        assert request.architecture.value in decision.rejected.message
    else:
        assert decision.rejected is None
    eligible = [r for r in explanation.candidates if not r.excluded]
    if eligible and not any(r.can_start_now for r in eligible):
        # All supporting servers that could take builds are busy: it queues on the best of them.
        assert decision.outcome is Outcome.queued
        assert decision.must_wait
        assert decision.chosen is not None
    if decision.outcome is Outcome.assigned:
        assert not decision.must_wait
        assert decision.chosen is not None
        assert decision.chosen.free_slots > decision.chosen.queued_builds


@given(
    request=requests,
    candidates=candidate_lists(),
    limits=thresholds,
    critical_free=st.floats(0, 1),
    warning_free=st.floats(0, 1),
)
def test_property_3_disk_space_critical_takes_no_new_builds(
    request: BuildRequest,
    candidates: list[BuildServerCandidate],
    limits: Thresholds,
    critical_free: float,
    warning_free: float,
) -> None:
    # Validates: 2.4
    # Two servers that would otherwise be ideal: one below critical, one between the thresholds.
    below_critical = BuildServerCandidate(
        id=20_001,
        name="disk-full",
        status=ServerStatus.online,
        architectures=frozenset({request.architecture}),
        max_concurrent_builds=64,
        load_1m=0.0,
        cpu_cores=64,
        disk_free_gb=limits.disk_critical_gb * critical_free * 0.999,
        labels=dict(request.labels),
    )
    candidates = [*candidates, below_critical]
    low_free = limits.disk_critical_gb + (limits.disk_warning_gb - limits.disk_critical_gb) * warning_free
    if low_free < limits.disk_warning_gb:
        candidates.append(replace(below_critical, id=20_002, name="disk-low", disk_free_gb=low_free))

    decision = select_build_server(request=request, candidates=candidates, thresholds=limits)

    assert decision.chosen is None or decision.chosen.id != below_critical.id
    report = decision.explanation.report(below_critical.id)
    assert Exclusion.disk_critical in {r.code for r in report.reasons}
    for c in candidates:
        free = c.disk_free_gb
        if free is None:
            continue
        r = decision.explanation.report(c.id)
        if free < limits.disk_critical_gb:
            assert decision.chosen is None or decision.chosen.id != c.id
            assert Exclusion.disk_critical in {x.code for x in r.reasons}
        elif free < limits.disk_warning_gb:
            assert NoteCode.disk_warning in {n.code for n in r.notes}
    if low_free < limits.disk_warning_gb:
        # The low-disk server may be chosen; it is eligible and carries the warning.
        low = decision.explanation.report(20_002)
        assert not low.excluded
        assert NoteCode.disk_warning in {n.code for n in low.notes}


@given(
    # Load averages as /proc/loadavg reports them, to two decimals.
    loads=st.lists(st.integers(0, 1590).map(lambda n: n / 100), min_size=2, max_size=10),
    actives=st.lists(st.integers(0, 7), min_size=2, max_size=10),
)
def test_property_17_load_balancing_prefers_least_loaded_build_server(
    loads: list[float], actives: list[int]
) -> None:
    # Validates: 13.1, 13.4
    base = BuildServerCandidate(
        id=0,
        name="",
        status=ServerStatus.online,
        architectures=frozenset({Architecture.arm64}),
        max_concurrent_builds=8,
        cpu_cores=16,
        load_1m=4.0,
        disk_free_gb=500.0,
    )
    request = BuildRequest(architecture=Architecture.arm64)
    limits = Thresholds(max_load_per_core=1.0)

    # Otherwise equal but for the load average: the lowest load wins, ties go to the lower id.
    by_load = [replace(base, id=i + 1, name=f"bs-{i + 1}", load_1m=load) for i, load in enumerate(loads)]
    chosen = select_build_server(request=request, candidates=by_load, thresholds=limits).chosen
    assert chosen is not None
    assert chosen.load_1m == min(loads)
    assert chosen.id == min(c.id for c in by_load if c.load_1m == min(loads))

    # Otherwise equal but for the running builds: the fewest wins.
    by_active = [replace(base, id=i + 1, name=f"bs-{i + 1}", active_builds=a) for i, a in enumerate(actives)]
    chosen = select_build_server(request=request, candidates=by_active, thresholds=limits).chosen
    assert chosen is not None
    assert chosen.active_builds == min(actives)
    assert chosen.id == min(c.id for c in by_active if c.active_builds == min(actives))

    # Identical servers: the order of the candidates never matters.
    same = [replace(base, id=i + 1, name=f"bs-{i + 1}") for i in range(len(loads))]
    forward = select_build_server(request=request, candidates=same, thresholds=limits).chosen
    backward = select_build_server(request=request, candidates=same[::-1], thresholds=limits).chosen
    assert forward == backward == same[0]
