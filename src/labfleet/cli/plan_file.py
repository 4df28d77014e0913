"""A pipeline's test plan file: read as TOML or JSON and checked as the API would check it, so a
wrong field is named with its path before anything is submitted."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from labfleet.schemas.pipelines import TestPlan


class PlanError(ValueError):
    """A test plan that cannot be used: unreadable, not TOML/JSON, or a field that is wrong."""

    def __init__(self, path: Path, problems: Sequence[str]) -> None:
        self.path = path
        self.problems = list(problems)
        super().__init__(f"{path}: " + "; ".join(self.problems))


def load_plan(path: Path) -> TestPlan:
    """A test plan from a ``.toml`` or ``.json`` file, checked as the API would check it."""
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".json"):
        raise PlanError(path, ["a test plan is a .toml or .json file"])
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise PlanError(path, [exc.strerror or str(exc)]) from exc
    try:
        data: Any = tomllib.loads(raw.decode("utf-8")) if suffix == ".toml" else json.loads(raw)
    except (UnicodeDecodeError, tomllib.TOMLDecodeError, ValueError) as exc:
        raise PlanError(path, [f"not valid {suffix[1:].upper()}: {exc}"]) from exc
    if not isinstance(data, dict):
        raise PlanError(path, ["expected a table (object) of build, boot, requirements and tests"])
    try:
        return TestPlan.model_validate(data)
    except ValidationError as exc:
        raise PlanError(path, field_problems(exc, data)) from exc


def field_problems(exc: ValidationError, data: dict[str, Any]) -> list[str]:
    """``field: reason`` for each error, the field as a path (``tests[1] "boot-ok".command``)."""
    problems = []
    for error in exc.errors():
        where = _field(tuple(error["loc"]), data)
        reason = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            reason = "unknown field"
        elif error["type"] == "missing":
            reason = "missing (required)"
        problems.append(f"{where}: {reason}" if where else reason)
    return problems


def _field(loc: tuple[Any, ...], data: Any) -> str:
    text = ""
    node = data
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
            node = node[part] if isinstance(node, list) and part < len(node) else None
            name = node.get("name") if isinstance(node, dict) else None
            if isinstance(name, str) and name:
                text += f" {json.dumps(name)}"
        else:
            text += f".{part}" if text else str(part)
            node = node.get(part) if isinstance(node, dict) else None
    return text


def plan_body(plan: TestPlan) -> dict[str, Any]:
    """The plan's part of a PipelineCreate: what the file said, as checked (``{arch}`` kept)."""
    return plan.model_dump(mode="json", exclude_unset=True)
