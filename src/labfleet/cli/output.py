"""Tables for people, JSON for scripts."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

out = Console()


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict):
        if {"value", "label"} <= value.keys():
            colour = value.get("colour", "")
            return f"[{colour}]{value['label']}[/{colour}]" if colour else str(value["label"])
        return ", ".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(cell(v) for v in value)
    return str(value)


def show_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=True))


def show_table(items: Sequence[dict[str, Any]], columns: Sequence[str], *, title: str | None = None) -> None:
    table = Table(title=title)
    for name in columns:
        table.add_column(name.replace("_", " "))
    for item in items:
        table.add_row(*(cell(_dig(item, name)) for name in columns))
    out.print(table)


def show_object(item: dict[str, Any]) -> None:
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    for key, value in item.items():
        table.add_row(key, cell(value))
    out.print(table)


def _dig(item: dict[str, Any], dotted: str) -> Any:
    value: Any = item
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value
