"""Field types and containers used across the API's schemas."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from typing import Annotated, Any, Generic, TypeVar

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

from labfleet.schemas.enums import ARCHITECTURE_ALIASES, Architecture, WorkStatus

_SLUG = re.compile(r"^[a-z0-9]([a-z0-9._-]*[a-z0-9])?$")
LABEL_KEY = re.compile(r"^[a-z0-9]([a-z0-9._/-]*[a-z0-9])?$")
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*\.?$"
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class Strict(BaseModel):
    """Input models refuse unknown fields, so a typo is an error, not a silent no-op."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def _slug(value: str) -> str:
    if not _SLUG.match(value):
        raise ValueError(
            "use lower-case letters, digits, '.', '_' and '-', starting and ending with a letter or digit"
        )
    return value


def _address(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        pass
    # An all-numeric last label is a mistyped IP address, never a host name.
    if not _HOSTNAME.match(value) or value.rstrip(".").rsplit(".", 1)[-1].isdigit():
        raise ValueError("not a valid host name or IP address")
    return value.lower().rstrip(".")


def _architecture(value: Any) -> Any:
    if isinstance(value, str):
        return ARCHITECTURE_ALIASES.get(value.strip().lower(), value.strip().lower())
    return value


def _labels(value: dict[str, str]) -> dict[str, str]:
    for key, item in value.items():
        if len(key) > 63 or not LABEL_KEY.match(key):
            raise ValueError(
                f"label key {key!r}: use at most 63 lower-case letters, digits, '.', '_', '/' and '-'"
            )
        if len(item) > 255 or _CONTROL.search(item):
            raise ValueError(f"label {key!r}: value must be at most 255 printable characters")
    return value


_CONTROL_IN_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _text(value: str) -> str:
    if _CONTROL_IN_TEXT.search(value):
        raise ValueError("must not contain control characters other than tab and newline")
    return value


def _one_line(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    return value


Slug = Annotated[str, StringConstraints(min_length=1, max_length=63), AfterValidator(_slug)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=255), AfterValidator(_one_line)]
Address = Annotated[str, StringConstraints(min_length=1, max_length=255), AfterValidator(_address)]
Port = Annotated[int, Field(ge=1, le=65535)]
ArchitectureName = Annotated[Architecture, BeforeValidator(_architecture)]
Labels = Annotated[dict[str, str], AfterValidator(_labels)]
Description = Annotated[str, StringConstraints(max_length=2000), AfterValidator(_text)]
Secret = Annotated[str, StringConstraints(min_length=1, max_length=16384)]


def require_unique(names: Sequence[str], what: str) -> None:
    """For a model's validator: ``ValueError`` naming each of ``names`` given more than once."""
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"{what} names must be unique; repeated: {', '.join(repeated)}")


class StatusOut(BaseModel):
    """A status as NetBox shows one: the slug, and how to display it."""

    value: str
    label: str
    colour: str

    @classmethod
    def of(cls, status: WorkStatus) -> StatusOut:
        return cls(value=status.value, label=status.label, colour=status.colour)


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    count: int = Field(description="Number of items matching the filters, over all pages.")
    items: list[T]
