"""Where a board's power actions are announced, and what each announcement says."""

from __future__ import annotations

from labfleet.db.models import PowerAction
from labfleet.services.core.events import EventBus


def topic(board_id: int) -> str:
    """Where a board's power actions and their progress are announced."""
    return f"board:{board_id}"


def announce(bus: EventBus | None, row: PowerAction) -> None:
    if bus is None:
        return
    bus.publish(
        topic(row.board_id),
        {
            "type": "power",
            "action": row.id,
            "kind": row.action,
            "status": row.status,
            "power_state": row.power_state,
            "boot_seen": row.boot_seen,
            "attempts": row.attempts,
            "error": row.error,
        },
    )
