"""Lifecycle changes an operator makes (R12): maintenance, back online, decommissioned."""

from __future__ import annotations

from typing import Literal

from labfleet.schemas.common import Strict


class StatusChange(Strict):
    """Maintenance lets running work finish and takes nothing new; online (after a health
    check); decommissioned leaves the pool and stays in the history."""

    status: Literal["online", "maintenance", "decommissioned"]
