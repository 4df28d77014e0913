"""Sealing write-only credentials with the secret box."""

from __future__ import annotations

from typing import Any

from labfleet.secretbox import SecretBox


def seal(box: SecretBox, **values: str | None) -> str | None:
    """Seal the values that are set; ``None`` when there is nothing to keep."""
    kept = {k: v for k, v in values.items() if v is not None}
    return box.seal(kept) if kept else None


def reseal(box: SecretBox, sealed: str | None, **updates: str | None) -> str | None:
    """Replace the given values in a sealed secret, keeping the others."""
    current: dict[str, Any] = box.open(sealed) if sealed else {}
    current.update({k: v for k, v in updates.items() if v is not None})
    return box.seal(current) if current else None
