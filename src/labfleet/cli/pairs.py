"""``key=value`` options, with dotted keys for nested fields (``ssh.port=2222``)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import typer


def _value(text: str) -> Any:
    # Lists, objects, booleans and null as JSON; everything else stays text, which
    # the server converts where the field is a number.
    if text[:1] in ("[", "{") or text in ("true", "false", "null"):
        try:
            return json.loads(text)
        except ValueError:
            pass
    return text


def parse(pairs: Iterable[str], *, option: str, raw: bool = False) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{pair!r}: expected key=value", param_hint=option)
        target = result
        *parents, leaf = key.split(".")
        for part in parents:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                raise typer.BadParameter(f"{key!r} conflicts with an earlier value", param_hint=option)
        target[leaf] = value if raw else _value(value)
    return result


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``extra`` laid over ``base``, nested dictionaries merged."""
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged
