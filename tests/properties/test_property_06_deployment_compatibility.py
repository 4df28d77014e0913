"""Property 6: deployment artifact compatibility.

For any set of build artifacts, requested architecture, QEMU machine or board type, and
(optionally) the chosen host or board, the artifacts are found deployable exactly when every
artifact is built for the target architecture, the artifact types the target boots from are
present (a VM: a kernel and an initramfs or a rootfs; a board: an initramfs, a rootfs or a
firmware image), the machine asked for (or the architecture's default) is offered by the host
for that architecture, and the board's architecture and type are the ones requested. Every
problem names the request field it concerns and says why.

Validates: 5.1, 6.1
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from labfleet.services.environments.compatibility import (
    ArtifactFacts,
    BoardFacts,
    HostFacts,
    Problem,
    check_board,
    check_qemu,
    image_of,
    machine_for,
)

PROPERTY = settings(max_examples=300)

ARCHES = ["x86_64", "arm64", "arm", "riscv64"]
# Valid architectures labfleet knows no default QEMU machine for.
NO_DEFAULT = ["ppc64le", "s390x"]
TYPES = ["kernel", "initramfs", "rootfs", "dtb", "modules", "firmware", "other"]
MACHINES = ["pc", "q35", "virt", "microvm", "sifive_u", "raspi3b"]
BOARD_TYPES = ["rpi4", "bbb", "imx8mq-evk", "visionfive2"]
# The documented defaults, written out here rather than read from the module.
DEFAULTS = {"x86_64": "pc", "arm64": "virt", "arm": "virt", "riscv64": "virt"}
FIELDS = {"artifacts", "target", "requirements.machine", "requirements.board_type"}

target_architectures = st.sampled_from(ARCHES) | st.sampled_from(NO_DEFAULT)
# Made once, not at every draw: a new strategy costs Hypothesis far more than a draw from it.
type_lists = st.lists(st.sampled_from(TYPES), max_size=5)
other_architectures = {a: st.sampled_from([*ARCHES, a]) for a in [*ARCHES, *NO_DEFAULT]}
qemu_images = st.sampled_from(["initramfs", "rootfs"])
board_images = st.sampled_from(["initramfs", "rootfs", "firmware"])
machines = st.none() | st.sampled_from(MACHINES)
machine_maps = st.dictionaries(
    st.sampled_from([*ARCHES, *NO_DEFAULT]),
    st.lists(st.sampled_from(MACHINES), max_size=3, unique=True),
    max_size=4,
)
other_machines = st.lists(st.sampled_from(MACHINES), max_size=2, unique=True)
host_names = st.sampled_from(["kvm-a", "kvm-b"])
board_types = st.none() | st.sampled_from(BOARD_TYPES)
board_names = st.sampled_from(["rpi-1", "bbb-2"])
board_architectures = st.sampled_from(ARCHES)
any_board_type = st.sampled_from(BOARD_TYPES)


@st.composite
def artifact_sets(draw: st.DrawFn, architecture: str, required: list[str]) -> list[ArtifactFacts]:
    """Random artifacts, about half the time all built for ``architecture`` and holding the
    ``required`` types, so deployable and refused sets both come up often."""
    types = draw(type_lists)
    if draw(st.booleans()):
        types += required
    types = list(draw(st.permutations(types)))
    matching = draw(st.booleans())
    out = []
    for i, kind in enumerate(types):
        arch = architecture if matching else draw(other_architectures[architecture])
        out.append(ArtifactFacts(id=i + 1, name=f"{kind}-{i}", type=kind, architecture=arch))
    return out


@st.composite
def qemu_cases(draw: st.DrawFn) -> tuple[list[ArtifactFacts], str, str | None, HostFacts | None]:
    architecture = draw(target_architectures)
    required = ["kernel", draw(qemu_images)]
    artifacts = draw(artifact_sets(architecture, required))
    machine = draw(machines)
    host = None
    if draw(st.booleans()):
        machine_types = draw(machine_maps)
        wanted = machine or DEFAULTS.get(architecture)
        if wanted is not None and draw(st.booleans()):
            # A host that runs the machine wanted, among others.
            others = draw(other_machines)
            machine_types[architecture] = draw(st.permutations(sorted({wanted, *others})))
        host = HostFacts(name=draw(host_names), machine_types=machine_types)
    return artifacts, architecture, machine, host


@st.composite
def board_cases(draw: st.DrawFn) -> tuple[list[ArtifactFacts], str, str | None, BoardFacts | None]:
    architecture = draw(target_architectures)
    required = [draw(board_images)]
    artifacts = draw(artifact_sets(architecture, required))
    board_type = draw(board_types)
    board = None
    if draw(st.booleans()):
        matching = draw(st.booleans())
        board = BoardFacts(
            name=draw(board_names),
            architecture=architecture if matching else draw(board_architectures),
            board_type=(board_type or "rpi4") if matching and draw(st.booleans()) else draw(any_board_type),
        )
    return artifacts, architecture, board_type, board


# -- the oracle: which request fields are wrong, from the rules stated in the docstring


@dataclass(frozen=True)
class Expected:
    fields: frozenset[str]
    wrong_arch: tuple[ArtifactFacts, ...]


def _artifact_faults(
    artifacts: list[ArtifactFacts], architecture: str, deployable_types: bool
) -> tuple[bool, tuple[ArtifactFacts, ...]]:
    wrong = tuple(a for a in artifacts if a.architecture != architecture)
    return (not artifacts or bool(wrong) or not deployable_types), wrong


def expected_qemu(
    artifacts: list[ArtifactFacts], architecture: str, machine: str | None, host: HostFacts | None
) -> Expected:
    types = {a.type for a in artifacts}
    bootable = "kernel" in types and ("initramfs" in types or "rootfs" in types)
    bad_artifacts, wrong = _artifact_faults(artifacts, architecture, bootable)
    fields = {"artifacts"} if bad_artifacts else set()
    wanted = machine if machine is not None else DEFAULTS.get(architecture)
    if wanted is None:
        fields.add("requirements.machine")
    elif host is not None:
        offered = list(host.machine_types.get(architecture, []))
        if not offered:
            fields.add("target")
        elif wanted not in offered:
            fields.add("requirements.machine")
    return Expected(frozenset(fields), wrong)


def expected_board(
    artifacts: list[ArtifactFacts], architecture: str, board_type: str | None, board: BoardFacts | None
) -> Expected:
    flashable = any(a.type in ("initramfs", "rootfs", "firmware") for a in artifacts)
    bad_artifacts, wrong = _artifact_faults(artifacts, architecture, flashable)
    fields = {"artifacts"} if bad_artifacts else set()
    if board is not None and board.architecture != architecture:
        fields.add("target")
    if board is not None and board_type is not None and board.board_type != board_type:
        fields.add("requirements.board_type")
    return Expected(frozenset(fields), wrong)


def _assert_matches(problems: list[Problem], expected: Expected) -> None:
    assert isinstance(problems, list)
    assert all(isinstance(p, Problem) for p in problems)
    # Deployable exactly when the oracle finds nothing wrong, both ways.
    assert (problems == []) == (not expected.fields)
    # Every problem names a request field and says why; every wrong field is named.
    for p in problems:
        assert p.field in FIELDS
        assert isinstance(p.reason, str)
        assert p.reason.strip()
    assert {p.field for p in problems} == expected.fields
    # Every artifact built for another architecture is named, each on its own.
    artifact_reasons = [p.reason for p in problems if p.field == "artifacts"]
    for a in expected.wrong_arch:
        assert sum(f"({a.name})" in r for r in artifact_reasons) == 1


# -- properties


@PROPERTY
@given(case=qemu_cases())
def test_property_6_qemu_deployable_exactly_when_compatible(
    case: tuple[list[ArtifactFacts], str, str | None, HostFacts | None],
) -> None:
    artifacts, architecture, machine, host = case
    problems = check_qemu(artifacts, architecture=architecture, machine=machine, host=host)
    _assert_matches(problems, expected_qemu(artifacts, architecture, machine, host))


@PROPERTY
@given(case=board_cases())
def test_property_6_board_deployable_exactly_when_compatible(
    case: tuple[list[ArtifactFacts], str, str | None, BoardFacts | None],
) -> None:
    artifacts, architecture, board_type, board = case
    problems = check_board(artifacts, architecture=architecture, board_type=board_type, board=board)
    _assert_matches(problems, expected_board(artifacts, architecture, board_type, board))


@PROPERTY
@given(case=qemu_cases())
def test_property_6_qemu_checks_without_a_host_are_those_with_a_host_minus_the_host_ones(
    case: tuple[list[ArtifactFacts], str, str | None, HostFacts | None],
) -> None:
    """The check before reserving (no host yet) finds a subset of what the check after finds."""
    artifacts, architecture, machine, host = case
    before = check_qemu(artifacts, architecture=architecture, machine=machine, host=None)
    after = check_qemu(artifacts, architecture=architecture, machine=machine, host=host)
    assert all(p in after for p in before)
    assert all(p.field in ("target", "requirements.machine") for p in after if p not in before)


@PROPERTY
@given(
    artifacts=st.lists(st.tuples(st.sampled_from(TYPES), st.sampled_from(ARCHES)), max_size=8).map(
        lambda rows: [ArtifactFacts(i + 1, f"{t}-{i}", t, a) for i, (t, a) in enumerate(rows)]
    )
)
def test_property_6_image_of_prefers_initramfs_then_rootfs_then_firmware(
    artifacts: list[ArtifactFacts],
) -> None:
    expected = None
    for kind in ("initramfs", "rootfs", "firmware"):
        of_kind = [a for a in artifacts if a.type == kind]
        if of_kind:
            expected = of_kind[0]  # the first listed, when there are several
            break
    assert image_of(artifacts) == expected
    if expected is not None:
        assert image_of(list(reversed(artifacts))).type == expected.type


# -- examples


def test_machine_for_uses_the_asked_machine_or_the_architecture_default() -> None:
    for arch, default in DEFAULTS.items():
        assert machine_for(arch, None) == default
        assert machine_for(arch, "q35") == "q35"
    assert machine_for("ppc64le", None) is None
    assert machine_for("ppc64le", "pseries") == "pseries"


def test_a_complete_x86_64_build_deploys_to_a_host_running_pc() -> None:
    arts = [
        ArtifactFacts(1, "bzImage", "kernel", "x86_64"),
        ArtifactFacts(2, "rootfs.ext4", "rootfs", "x86_64"),
    ]
    host = HostFacts("kvm-a", {"x86_64": ["pc", "q35"]})
    assert check_qemu(arts, architecture="x86_64", machine=None, host=host) == []
    assert check_qemu(arts, architecture="x86_64", machine="q35", host=host) == []
    assert [p.field for p in check_qemu(arts, architecture="x86_64", machine="microvm", host=host)] == [
        "requirements.machine"
    ]
    assert [
        p.field for p in check_qemu(arts, architecture="x86_64", machine=None, host=HostFacts("h", {}))
    ] == ["target"]


def test_an_empty_build_is_refused_for_both_kinds() -> None:
    assert {p.field for p in check_qemu([], architecture="arm64", machine=None, host=None)} == {"artifacts"}
    assert {p.field for p in check_board([], architecture="arm64", board_type=None, board=None)} == {
        "artifacts"
    }


def test_a_board_refusal_names_every_problem_at_once() -> None:
    arts = [ArtifactFacts(7, "Image", "kernel", "x86_64")]
    board = BoardFacts("rpi-1", "arm64", "rpi4")
    problems = check_board(arts, architecture="arm", board_type="bbb", board=board)
    assert sorted(p.field for p in problems) == [
        "artifacts",
        "artifacts",
        "requirements.board_type",
        "target",
    ]
    assert any("artifact 7 (Image)" in p.reason for p in problems)
