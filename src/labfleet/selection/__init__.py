"""Pure selection: filtering and scoring of resources, with explanations (R13).

No I/O, no database, no asyncio: frozen dataclasses in, frozen dataclasses out.
"""

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

__all__ = [
    "DEFAULT_DURATION_S",
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
    "Note",
    "NoteCode",
    "Outcome",
    "Reason",
    "Rejection",
    "Score",
    "ScorePart",
    "Thresholds",
    "Weights",
    "estimated_start",
    "select_build_server",
]
