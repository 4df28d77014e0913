"""Which channel hears which alert change, and how long a failed delivery waits. Pure.

Validates: 16.5
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from labfleet.db.models import AlertEvent, NotificationChannel
from labfleet.services.notifications import rules


def _event(**changes: object) -> AlertEvent:
    fields: dict[str, object] = {
        "id": 41,
        "alert_id": 12,
        "event": "raised",
        "severity": "warning",
        "resource_kind": "host",
        "resource_id": 3,
        "kind": "disk_low",
        "message": "host kvm-3: 4 GB free",
        "created_at": datetime(2026, 12, 4, tzinfo=UTC),
    } | changes
    return AlertEvent(**fields)


def _channel(**changes: object) -> NotificationChannel:
    fields: dict[str, object] = {
        "id": 7,
        "enabled": True,
        "min_severity": "warning",
        "resource_kinds": [],
        "events": [],
    } | changes
    return NotificationChannel(**fields)


@pytest.mark.parametrize(
    ("channel", "event", "wanted"),
    [
        ({}, {}, True),
        ({"min_severity": "critical"}, {}, False),
        ({"min_severity": "info"}, {"severity": "info"}, True),
        ({"min_severity": "warning"}, {"severity": "info"}, False),
        ({"resource_kinds": ["board"]}, {}, False),
        ({"resource_kinds": ["board", "host"]}, {}, True),
        ({"events": ["resolved"]}, {}, False),
        ({"events": ["resolved"]}, {"event": "resolved"}, True),
        ({"enabled": False}, {}, False),
        # Never told of its own failure; the other channels are.
        ({}, {"resource_kind": "channel", "resource_id": 7}, False),
        ({}, {"resource_kind": "channel", "resource_id": 8}, True),
    ],
)
def test_a_channel_hears_what_its_filters_let_through(
    channel: dict[str, object], event: dict[str, object], wanted: bool
) -> None:
    assert rules.wants(_channel(**channel), _event(**event)) is wanted


def test_the_wait_doubles_up_to_the_cap_with_at_most_a_quarter_more() -> None:
    waits = [rules.backoff(n, base=5, cap=60, jitter=lambda: 0.0) for n in range(1, 7)]
    assert waits == [5, 10, 20, 40, 60, 60]
    assert rules.backoff(2, base=5, cap=60, jitter=lambda: 1.0) == 12.5


def test_a_notice_says_what_changed_and_carries_the_delivery_key() -> None:
    resolved = _event(event="resolved", actor="alice", comment="PSU replaced", severity="critical")
    notice = rules.notice(resolved, 7)
    assert notice.key == "41:7"
    assert notice.subject == "[labfleet] CRITICAL resolved: disk_low on host 3"
    assert "by alice: PSU replaced" in notice.text
    assert notice.level == "success"
    assert notice.payload["alert"] == {
        "id": 12,
        "kind": "disk_low",
        "severity": "critical",
        "resource_kind": "host",
        "resource_id": 3,
        "message": "host kvm-3: 4 GB free",
    }
    assert rules.notice(_event(severity="critical"), 7).level == "failure"
