"""How environments are shown: where one stands, its warnings and its steps."""

from __future__ import annotations

from typing import Any

from labfleet.schemas.enums import EnvironmentStatus

ENV_PATH = "/environments"
ENV_SETTLED = (EnvironmentStatus.ready, EnvironmentStatus.failed, EnvironmentStatus.released)
"""An environment in these changes no more by itself (``--wait`` stops there)."""


def env_target(env: dict[str, Any]) -> str:
    if env.get("host") or env.get("host_id") is not None:
        return f"host {env.get('host') or '#' + str(env.get('host_id'))}"
    if env.get("board") or env.get("board_id") is not None:
        return f"board {env.get('board') or '#' + str(env.get('board_id'))}"
    return f"{env.get('target', 'auto')} (not chosen yet)"


def env_warnings(env: dict[str, Any]) -> list[str]:
    return [str(w.get("message", w)) if isinstance(w, dict) else str(w) for w in env.get("warnings") or ()]


def step_line(step: dict[str, Any]) -> str:
    name = step.get("step") or step.get("name") or "?"
    rest = {k: v for k, v in step.items() if k not in ("step", "name", "status", "at")}
    extra = ", ".join(f"{k}={v}" for k, v in rest.items())
    return f"step {name}: {step.get('status', '-')}" + (f" ({extra})" if extra else "")
