"""Pure selection: filtering and scoring of resources, with explanations (R13).

No I/O, no database, no asyncio: frozen dataclasses in, frozen dataclasses out.
"""

from labfleet.selection.boards import (
    BoardAlternative,
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
    Weights,
    select_build_server,
)
from labfleet.selection.estimates import (
    DEFAULT_DURATION_S,
    DurationSample,
    Estimate,
    EstimateModel,
    EstimateSource,
    estimated_start,
)
from labfleet.selection.explanation import (
    CandidateReport,
    Exclusion,
    Explanation,
    Note,
    NoteCode,
    Outcome,
    Reason,
    Rejection,
    Score,
    ScorePart,
)
from labfleet.selection.host_types import (
    Acceleration,
    HostAlternative,
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
    "DEFAULT_DURATION_S",
    "Acceleration",
    "BoardAlternative",
    "BoardCandidate",
    "BoardDecision",
    "BoardRequest",
    "BoardWeights",
    "BuildRequest",
    "BuildServerCandidate",
    "CandidateReport",
    "Decision",
    "DurationSample",
    "Estimate",
    "EstimateModel",
    "EstimateSource",
    "Exclusion",
    "Explanation",
    "HostAlternative",
    "HostCandidate",
    "HostDecision",
    "HostRequest",
    "HostThresholds",
    "HostUtilization",
    "HostWeights",
    "Note",
    "NoteCode",
    "Outcome",
    "Reason",
    "Rejection",
    "Score",
    "ScorePart",
    "Thresholds",
    "Weights",
    "architectures_of",
    "estimated_start",
    "select_board",
    "select_build_server",
    "select_host",
]
