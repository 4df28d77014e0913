"""Hypothesis strategies for build server candidates and requests."""

from __future__ import annotations

from hypothesis import strategies as st

from labfleet.schemas.enums import Architecture, ServerStatus
from labfleet.selection import BuildRequest, BuildServerCandidate, Thresholds

architectures = st.sampled_from(list(Architecture))
statuses = st.sampled_from(list(ServerStatus))
label_sets = st.dictionaries(
    st.sampled_from(["rack", "team", "ccache"]), st.sampled_from(["a", "b"]), max_size=2
)
thresholds = st.builds(
    lambda critical, extra, lpc: Thresholds(
        disk_critical_gb=critical, disk_warning_gb=critical + extra, max_load_per_core=lpc
    ),
    st.floats(0.5, 100),
    st.floats(0, 200),
    st.floats(0.1, 4),
)


# Made once, not at every draw: a new strategy costs Hypothesis far more than a draw from it.
candidate_ids = st.lists(st.integers(1, 10_000), unique=True, max_size=12)
architecture_sets = st.sets(architectures, max_size=4)
slots = st.integers(1, 8)
active = {n: st.integers(0, n + 2) for n in range(1, 9)}
queued = st.integers(0, 5)
loads = st.none() | st.floats(0, 128)
cores = st.none() | st.integers(1, 128)
disk_free = st.none() | st.floats(0, 2000)


@st.composite
def candidate_lists(draw: st.DrawFn) -> list[BuildServerCandidate]:
    """Up to 12 candidates with unique ids and every combination of status, disk and load."""
    out = []
    for i in draw(candidate_ids):
        max_concurrent = draw(slots)
        out.append(
            BuildServerCandidate(
                id=i,
                name=f"bs-{i}",
                status=draw(statuses),
                architectures=frozenset(draw(architecture_sets)),
                max_concurrent_builds=max_concurrent,
                active_builds=draw(active[max_concurrent]),
                queued_builds=draw(queued),
                load_1m=draw(loads),
                cpu_cores=draw(cores),
                disk_free_gb=draw(disk_free),
                labels=draw(label_sets),
            )
        )
    return out


requests = st.builds(
    BuildRequest,
    architecture=architectures,
    labels=st.dictionaries(st.sampled_from(["rack", "team"]), st.sampled_from(["a", "b"]), max_size=1),
    repository=st.none() | st.just("linux.git"),
    duration_hint_s=st.none() | st.floats(1, 10_000),
)
