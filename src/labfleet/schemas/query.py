"""What a list request asks for: a page, a sort order and filters."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from labfleet.errors import Invalid
from labfleet.schemas.common import LABEL_KEY

MAX_PAGE = 1000


@dataclass(frozen=True, slots=True)
class LabelFilter:
    """``key=value`` matches that value; a bare ``key`` matches any value."""

    key: str
    value: str | None = None

    @classmethod
    def parse(cls, text: str) -> LabelFilter:
        key, sep, value = text.partition("=")
        if not LABEL_KEY.match(key):
            raise Invalid(f"{text!r} is not a label filter; use key or key=value", field="label")
        return cls(key, value if sep else None)


@dataclass(frozen=True, slots=True)
class ListQuery:
    limit: int = 50
    offset: int = 0
    sort: str | None = None
    statuses: tuple[str, ...] = ()
    labels: tuple[LabelFilter, ...] = ()
    fields: dict[str, Any] = field(default_factory=dict)

    def sort_key(self, allowed: frozenset[str]) -> tuple[str, bool] | None:
        """The column to sort by and whether descending; ``Invalid`` names the choices."""
        if not self.sort:
            return None
        name = self.sort.removeprefix("-")
        if name not in allowed:
            raise Invalid(
                f"cannot sort by {name!r}; sort by one of {', '.join(sorted(allowed))}, '-' for descending",
                field="sort",
            )
        return name, self.sort.startswith("-")
