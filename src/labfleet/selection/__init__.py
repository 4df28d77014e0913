"""Pure selection: filtering and scoring of resources, with explanations (R13).

No I/O, no database, no asyncio: frozen dataclasses in, frozen dataclasses out. This package
names what the rest of labfleet uses; the parts of an explanation and the weights stand in
their own modules.
"""

from labfleet.selection.boards import (
    BoardCandidate,
    BoardDecision,
    BoardRequest,
    BoardWeights,
    select_board,
)
from labfleet.selection.build_servers import (
    BuildRequest,
    BuildServerCandidate,
    Decision,
    Thresholds,
    select_build_server,
)
from labfleet.selection.estimates import (
    DurationSample,
    EstimateModel,
    EstimateSource,
    estimated_start,
)
from labfleet.selection.explanation import (
    Exclusion,
    Explanation,
    NoteCode,
    Outcome,
)
from labfleet.selection.host_types import (
    Acceleration,
    HostCandidate,
    HostDecision,
    HostRequest,
    HostThresholds,
    HostUtilization,
    HostWeights,
    architectures_of,
)
from labfleet.selection.hosts import select_host

__all__ = [
    "Acceleration",
    "BoardCandidate",
    "BoardDecision",
    "BoardRequest",
    "BoardWeights",
    "BuildRequest",
    "BuildServerCandidate",
    "Decision",
    "DurationSample",
    "EstimateModel",
    "EstimateSource",
    "Exclusion",
    "Explanation",
    "HostCandidate",
    "HostDecision",
    "HostRequest",
    "HostThresholds",
    "HostUtilization",
    "HostWeights",
    "NoteCode",
    "Outcome",
    "Thresholds",
    "architectures_of",
    "estimated_start",
    "select_board",
    "select_build_server",
    "select_host",
]
