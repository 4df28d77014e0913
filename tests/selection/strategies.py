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


@st.composite
def candidate_lists(draw: st.DrawFn) -> list[BuildServerCandidate]:
    """Up to 12 candidates with unique ids and every combination of status, disk and load."""
    ids = draw(st.lists(st.integers(1, 10_000), unique=True, max_size=12))
    out = []
    for i in ids:
        max_concurrent = draw(st.integers(1, 8))
        out.append(
            BuildServerCandidate(
                id=i,
                name=f"bs-{i}",
                status=draw(statuses),
                architectures=frozenset(draw(st.sets(architectures, max_size=4))),
                max_concurrent_builds=max_concurrent,
                active_builds=draw(st.integers(0, max_concurrent + 2)),
                queued_builds=draw(st.integers(0, 5)),
                load_1m=draw(st.none() | st.floats(0, 128)),
                cpu_cores=draw(st.none() | st.integers(1, 128)),
                disk_free_gb=draw(st.none() | st.floats(0, 2000)),
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
