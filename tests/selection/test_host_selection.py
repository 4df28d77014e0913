"""Examples of QEMU host decisions and what their explanations say (R9.4, R11.3, R11.4, R13.2, R13.5)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from labfleet.errors import Invalid
from labfleet.schemas.enums import Architecture, ServerStatus
from labfleet.selection import (
    Acceleration,
    Exclusion,
    Explanation,
    HostCandidate,
    HostRequest,
    HostThresholds,
    HostUtilization,
    HostWeights,
    NoteCode,
    Outcome,
    architectures_of,
    select_host,
)

ARM64 = Architecture.arm64
X86 = Architecture.x86_64


def host(i: int, **changes: object) -> HostCandidate:
    """An idle x86_64 KVM host of 16 cores, 32 GB and 500 GB that emulates arm64."""
    base = HostCandidate(
        id=i,
        name=f"kvm-{i}",
        status=ServerStatus.online,
        native_architectures=frozenset({X86}),
        emulated_architectures=frozenset({ARM64}),
        kvm=True,
        cpu_cores=16,
        memory_mb=32768,
        storage_gb=500.0,
        utilization=HostUtilization(cpu_pct=10.0, memory_pct=20.0, storage_pct=30.0),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def arm_host(i: int, **changes: object) -> HostCandidate:
    """An idle arm64 KVM host of the same size."""
    return host(i, native_architectures=frozenset({ARM64}), emulated_architectures=frozenset(), **changes)


def codes(explanation: Explanation, candidate_id: int) -> list[Exclusion]:
    return [r.code for r in explanation.report(candidate_id).reasons]


def test_explanation_names_every_exclusion_and_scores_the_rest() -> None:
    # Validates: 13.2, 13.5, 9.4, 12.1
    candidates = [
        host(1, status=ServerStatus.decommissioned),
        host(2, native_architectures=frozenset({Architecture.s390x}), emulated_architectures=frozenset()),
        host(3, status=ServerStatus.maintenance),
        host(4, status=ServerStatus.offline),
        host(5, labels={"rack": "b"}),
        host(6, cpu_cores=2),
        host(7, reserved_vcpus=14),
        host(8, reserved_memory_mb=30000),
        host(9, reserved_disk_gb=495.0),
        host(10, utilization=HostUtilization(cpu_pct=86.0, memory_pct=20.0, storage_pct=90.0)),
        host(11, memory_mb=None),
        host(12, labels={"rack": "a"}),
        host(13, labels={"rack": "a"}, status=ServerStatus.degraded, reserved_vcpus=8),
    ]
    request = HostRequest(architecture=X86, vcpus=4, memory_mb=4096, disk_gb=20, labels={"rack": "a"})
    decision = select_host(request=request, candidates=candidates)
    explanation = decision.explanation

    assert decision.outcome is Outcome.assigned
    assert decision.chosen is not None and decision.chosen.id == 12
    assert codes(explanation, 1) == [Exclusion.decommissioned, Exclusion.labels]
    assert codes(explanation, 2) == [Exclusion.architecture, Exclusion.labels]
    assert codes(explanation, 3) == [Exclusion.labels, Exclusion.maintenance]
    assert codes(explanation, 4) == [Exclusion.labels, Exclusion.offline]
    assert codes(explanation, 5) == [Exclusion.labels]
    assert codes(explanation, 6) == [Exclusion.labels, Exclusion.too_small]
    assert codes(explanation, 7)[-1] is Exclusion.insufficient_cpu
    assert codes(explanation, 8)[-1] is Exclusion.insufficient_memory
    assert codes(explanation, 9)[-1] is Exclusion.insufficient_disk
    assert codes(explanation, 10)[-1] is Exclusion.over_threshold
    assert codes(explanation, 11)[-1] is Exclusion.capacity_unknown
    messages = {r.id: [x.message for x in r.reasons] for r in explanation.candidates}
    assert messages[2][0] == "cannot run x86_64 (runs s390x)"
    assert messages[6][-1] == "needs 4 vCPUs, has 2 cores in all"
    assert messages[7][-1] == "2 of 16 vCPUs free after reservations, needs 4"
    assert messages[8][-1] == "2768 of 32768 MB memory free after reservations, needs 4096"
    assert messages[9][-1] == "5 of 500 GB disk free after reservations, needs 20"
    assert messages[10][-1] == "cpu at 86%, storage at 90%, above its threshold of 85%"
    assert messages[11][-1] == "memory not detected yet"
    # Eligible first, best first; excluded after, in the order they came.
    assert [r.id for r in explanation.candidates] == [12, 13, *range(1, 12)]
    twelve, thirteen = explanation.report(12), explanation.report(13)
    assert (twelve.rank, thirteen.rank) == (1, 2)
    assert {n.code for n in thirteen.notes} == {NoteCode.degraded}
    assert twelve.score is not None
    assert [p.name for p in twelve.score.parts] == ["cpu", "memory", "disk", "utilization"]
    assert [p.value for p in twelve.score.parts] == [0.75, 0.875, 0.96, pytest.approx(1 - 30 / 85)]
    assert twelve.score.total == pytest.approx(sum(p.value * p.weight for p in twelve.score.parts), abs=1e-5)

    as_json = json.loads(json.dumps(decision.as_dict()))
    assert as_json["chosen_id"] == 12
    assert as_json["explanation"]["weights"] == {"cpu": 0.3, "memory": 0.3, "disk": 0.1, "utilization": 0.3}
    assert as_json["explanation"]["candidates"][0]["score"]["parts"][0]["detail"] == (
        "12 of 16 vCPUs free after this VM"
    )


def test_kvm_runs_only_the_native_architecture() -> None:
    # Validates: 11.3, 13.2
    emulating = host(1)
    native_without_kvm = arm_host(2, kvm=False)
    kvm = arm_host(3, reserved_vcpus=12)
    request = HostRequest(architecture=ARM64, vcpus=2, kvm_required=True)
    decision = select_host(request=request, candidates=[emulating, native_without_kvm, kvm])
    assert decision.chosen == kvm
    assert (
        decision.explanation.report(1).reasons[0].message
        == "arm64 is only emulated here; KVM needs it native"
    )
    assert decision.explanation.report(2).reasons[0].message == "no KVM on this host"

    without_kvm = select_host(
        request=HostRequest(architecture=ARM64, kvm_required=True), candidates=[emulating]
    )
    assert without_kvm.rejected is not None
    assert without_kvm.rejected.code is Exclusion.no_kvm
    assert without_kvm.rejected.message == "no host in the pool runs arm64 with KVM"


def test_native_beats_emulated_however_busy() -> None:
    # Validates: 13.2
    busy_kvm = arm_host(1, reserved_vcpus=12, utilization=HostUtilization(80.0, 80.0, 80.0))
    native_tcg = arm_host(2, kvm=False)
    idle_emulating = host(3)
    request = HostRequest(architecture=ARM64, vcpus=2)
    decision = select_host(request=request, candidates=[idle_emulating, native_tcg, busy_kvm])
    assert decision.chosen == busy_kvm
    assert [r.id for r in decision.explanation.candidates] == [1, 2, 3]
    emulated = decision.explanation.report(3)
    tcg = decision.explanation.report(2)
    assert emulated.score is not None and tcg.score is not None
    assert emulated.score.total == tcg.score.total  # equal hosts but for how they would run it
    assert {n.code for n in emulated.notes} == {NoteCode.emulated}
    assert {n.code for n in tcg.notes} == {NoteCode.no_kvm}
    assert decision.explanation.summary.startswith("kvm-1 chosen: kvm")


def test_reservations_are_subtracted_and_an_exact_fit_is_taken() -> None:
    # Validates: 11.3, 11.5
    exact = host(1, reserved_vcpus=12, reserved_memory_mb=28672, reserved_disk_gb=480.0)
    request = HostRequest(architecture=X86, vcpus=4, memory_mb=4096, disk_gb=20)
    assert select_host(request=request, candidates=[exact]).chosen == exact
    one_more = replace(request, vcpus=5)
    decision = select_host(request=one_more, candidates=[exact])
    assert decision.outcome is Outcome.unavailable
    assert codes(decision.explanation, 1) == [Exclusion.insufficient_cpu]


def test_utilization_at_the_threshold_is_allowed_above_is_not() -> None:
    # Validates: 9.4
    at = host(1, utilization=HostUtilization(85.0, 10.0, 10.0))
    above = host(2, utilization=HostUtilization(10.0, 85.5, 10.0))
    request = HostRequest(architecture=X86)
    decision = select_host(request=request, candidates=[above, at])
    assert decision.chosen == at
    notes = {n.code: n.message for n in decision.explanation.report(1).notes}
    assert notes[NoteCode.near_threshold] == "cpu at 85%, within 10 points of its threshold of 85%"
    assert codes(decision.explanation, 2) == [Exclusion.over_threshold]
    strict = select_host(request=request, candidates=[replace(at, utilization_threshold_pct=50)])
    assert strict.outcome is Outcome.unavailable


def test_capacity_warnings_when_the_chosen_host_fills_up() -> None:
    # Validates: 11.4
    nearly_full = host(1, reserved_vcpus=10, reserved_memory_mb=16384)
    request = HostRequest(architecture=X86, vcpus=4, memory_mb=16384)
    decision = select_host(request=request, candidates=[nearly_full])
    assert decision.chosen == nearly_full
    assert [n.message for n in decision.warnings] == [
        "vCPUs 88% reserved after this VM (14 of 16), above 80%",
        "memory 100% reserved after this VM (32768 of 32768 MB), above 80%",
    ]
    assert json.loads(json.dumps(decision.as_dict()))["warnings"][0]["code"] == "capacity_warning"
    relaxed = select_host(
        request=request, candidates=[nearly_full], thresholds=HostThresholds(capacity_warning_pct=100)
    )
    assert relaxed.warnings == ()


def test_nothing_matching_the_architecture_is_rejected_at_once() -> None:
    # Validates: 11.3 (the API answers 422)
    decision = select_host(
        request=HostRequest(architecture=Architecture.riscv64),
        candidates=[host(1), arm_host(2, status=ServerStatus.maintenance)],
    )
    assert decision.outcome is Outcome.rejected
    assert decision.rejected is not None
    assert decision.rejected.code is Exclusion.architecture
    assert decision.rejected.message == "no host in the pool runs riscv64, natively or emulated"
    assert decision.chosen is None and decision.alternatives == ()

    gone = select_host(
        request=HostRequest(architecture=ARM64), candidates=[arm_host(1, status=ServerStatus.decommissioned)]
    )
    assert gone.rejected is not None and gone.rejected.code is Exclusion.architecture


def test_labels_or_size_nobody_has_are_rejected() -> None:
    # Validates: 11.3
    candidates = [host(1, labels={"rack": "a"}), host(2, cpu_cores=64, labels={"rack": "b"})]
    unlabelled = select_host(
        request=HostRequest(architecture=X86, labels={"rack": "c"}), candidates=candidates
    )
    assert unlabelled.rejected is not None
    assert unlabelled.rejected.code is Exclusion.labels
    assert unlabelled.rejected.message == "no host that runs x86_64 has the labels rack=c"

    huge = HostRequest(architecture=X86, vcpus=32, memory_mb=2048, labels={"rack": "a"}, kvm_required=True)
    too_big = select_host(request=huge, candidates=candidates)
    assert too_big.rejected is not None
    assert too_big.rejected.code is Exclusion.too_small
    assert too_big.rejected.message == (
        "no host that runs x86_64 with KVM with the labels rack=a is large enough for "
        "32 vCPUs, 2048 MB memory and 0 GB disk"
    )


def test_full_or_unavailable_hosts_make_it_unavailable_with_the_nearest_alternatives() -> None:
    # Validates: 11.4, 12.1, 9.4
    candidates = [
        host(1, status=ServerStatus.maintenance),
        host(2, reserved_vcpus=15),  # 3 of 4 vCPUs short: 0.75
        host(3, reserved_vcpus=16, reserved_memory_mb=32768),  # short of both
        host(4, utilization=HostUtilization(99.0, 10.0, 10.0)),  # 14 points over: 0.14
        host(5, reserved_vcpus=12, reserved_memory_mb=31744),  # 1 of 2 GB short: 0.5
        host(6, native_architectures=frozenset({Architecture.s390x}), emulated_architectures=frozenset()),
    ]
    request = HostRequest(architecture=X86, vcpus=4, memory_mb=2048)
    decision = select_host(request=request, candidates=candidates, max_alternatives=5)

    assert decision.outcome is Outcome.unavailable
    assert decision.chosen is None and decision.rejected is None
    assert decision.explanation.summary == "5 host(s) could take it, none now"
    # One obstacle that passes on its own first, the smallest shortfall first; maintenance last.
    assert [a.id for a in decision.alternatives] == [4, 5, 2, 3, 1]
    nearest_full = decision.alternatives[1]
    assert not nearest_full.available_now
    assert [r.code for r in nearest_full.lacks] == [Exclusion.insufficient_memory]
    # What it could take now, so that a smaller VM can be asked for.
    assert (nearest_full.free_vcpus, nearest_full.free_memory_mb, nearest_full.free_disk_gb) == (
        4,
        1024,
        500.0,
    )
    assert nearest_full.acceleration is Acceleration.kvm
    as_json = json.loads(json.dumps(decision.as_dict()))
    assert as_json["alternatives"][1]["lacks"][0]["code"] == "insufficient_memory"
    assert len(select_host(request=request, candidates=candidates).alternatives) == 3


def test_a_pinned_host_that_cannot_take_it_suggests_those_that_can() -> None:
    # Validates: 11.2, 11.4
    candidates = [host(1, reserved_vcpus=16), host(2, reserved_vcpus=8), host(3), arm_host(4)]
    request = HostRequest(architecture=X86, vcpus=4, host_id=1)
    decision = select_host(request=request, candidates=candidates)
    assert decision.outcome is Outcome.unavailable
    assert decision.explanation.summary == (
        "host kvm-1 cannot take it now: 0 of 16 vCPUs free after reservations, needs 4"
    )
    assert codes(decision.explanation, 2) == [Exclusion.not_pinned]
    assert [(a.id, a.available_now, a.lacks) for a in decision.alternatives] == [(3, True, ()), (2, True, ())]

    pinned = select_host(request=replace(request, host_id=2), candidates=candidates)
    assert pinned.chosen is not None and pinned.chosen.id == 2

    wrong = select_host(request=replace(request, host_id=4), candidates=candidates)
    assert wrong.outcome is Outcome.rejected
    assert wrong.rejected is not None
    assert wrong.rejected.message == "host kvm-4 cannot take it: cannot run x86_64 (runs arm64)"
    # Those that can take it now first, then the full one with what it lacks.
    assert [(a.id, a.available_now) for a in wrong.alternatives] == [(3, True), (2, True), (1, False)]

    unknown = select_host(request=replace(request, host_id=99), candidates=candidates)
    assert unknown.rejected is not None
    assert unknown.rejected.code is Exclusion.not_pinned
    assert unknown.rejected.message == "no host with id 99"


def test_new_hosts_without_samples_are_neutral() -> None:
    # Validates: 13.2
    fresh = host(1, utilization=None)
    decision = select_host(request=HostRequest(architecture=X86), candidates=[fresh])
    report = decision.explanation.report(1)
    assert {n.code for n in report.notes} == {NoteCode.utilization_unknown}
    assert report.score is not None and report.score.parts[3].value == 0.5


def test_weights_change_the_order() -> None:
    # Validates: 13.2
    cpu_free = host(1, reserved_memory_mb=24576)
    memory_free = host(2, reserved_vcpus=12)
    request = HostRequest(architecture=X86)
    by_cpu = select_host(request=request, candidates=[cpu_free, memory_free], weights=HostWeights(1, 0, 0, 0))
    by_memory = select_host(
        request=request, candidates=[cpu_free, memory_free], weights=HostWeights(0, 1, 0, 0)
    )
    assert by_cpu.chosen == cpu_free
    assert by_memory.chosen == memory_free


def test_architectures_from_libvirt_machine_types() -> None:
    # Validates: 7.5
    machine_types = {"x86_64": ["q35"], "aarch64": ["virt"], "i386": ["pc"], "sparc": ["SS-5"]}
    assert architectures_of(machine_types) == {X86, ARM64, Architecture.i386}


def test_bad_requests_and_duplicate_candidates_are_invalid() -> None:
    with pytest.raises(Invalid):
        HostRequest(architecture=X86, vcpus=0)
    with pytest.raises(Invalid):
        HostRequest(architecture=X86, memory_mb=0)
    with pytest.raises(Invalid):
        HostRequest(architecture=X86, disk_gb=-1)
    with pytest.raises(Invalid):
        select_host(request=HostRequest(architecture=X86), candidates=[host(1), host(1)])
    with pytest.raises(Invalid):
        HostWeights(0, 0, 0, 0)
    with pytest.raises(Invalid):
        HostThresholds(capacity_warning_pct=0)
