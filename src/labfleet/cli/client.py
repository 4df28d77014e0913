"""Talking to a labfleet server: where it is, which token, and errors made readable."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import platformdirs
import typer
from rich.console import Console

err = Console(stderr=True)

DEFAULT_URL = "http://127.0.0.1:8000"


def config_file() -> Path:
    return Path(
        os.environ.get("LABFLEET_CLI_CONFIG") or Path(platformdirs.user_config_dir("labfleet")) / "cli.toml"
    )


@dataclass
class Target:
    url: str
    token: str | None


def resolve(url: str | None, token: str | None) -> Target:
    """Flags first, then LABFLEET_URL / LABFLEET_TOKEN, then the config file."""
    file: dict[str, Any] = {}
    path = config_file()
    if path.exists():
        with path.open("rb") as f:
            file = tomllib.load(f)
    return Target(
        url=(url or os.environ.get("LABFLEET_URL") or file.get("url") or DEFAULT_URL).rstrip("/"),
        token=token or os.environ.get("LABFLEET_TOKEN") or file.get("token"),
    )


def _fail(response: httpx.Response) -> None:
    try:
        problem = response.json()
    except ValueError:
        problem = {"detail": response.text or response.reason_phrase}
    detail = problem.get("detail") or problem.get("title") or str(response.status_code)
    err.print(f"[red]error {response.status_code}:[/red] {detail}")
    for item in problem.get("errors", [])[1:]:
        err.print(f"  {item.get('field')}: {item.get('reason')}")
    alternatives = problem.get("alternatives") or []
    if alternatives:
        err.print("alternatives:")
    for alt in alternatives:
        lacks = "; ".join(str(x.get("message", "")) for x in alt.get("lacks", []))
        state = "free now" if alt.get("available_now") else f"lacks: {lacks}"
        err.print(f"  {alt.get('name')} (#{alt.get('id')}): {state}", markup=False, highlight=False)
    raise typer.Exit(1)


class Client:
    def __init__(self, target: Target, transport: httpx.BaseTransport | None = None) -> None:
        headers = {"Authorization": f"Bearer {target.token}"} if target.token else {}
        self._http = httpx.Client(
            base_url=f"{target.url}/api/v1", headers=headers, timeout=60, transport=transport
        )

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            err.print(f"[red]error:[/red] cannot reach labfleet at {self._http.base_url}: {exc}")
            raise typer.Exit(1) from exc
        if response.is_error:
            _fail(response)
        return response.json() if response.content else None

    def stream(
        self, path: str, *, params: dict[str, str] | None = None, chunk_size: int = 1 << 20
    ) -> Iterator[bytes]:
        """The body of ``GET path``, as it arrives."""
        try:
            with self._http.stream("GET", path, params=params) as response:
                if response.is_error:
                    response.read()
                    _fail(response)
                yield from response.iter_bytes(chunk_size)
        except httpx.TransportError as exc:
            err.print(f"[red]error:[/red] cannot reach labfleet at {self._http.base_url}: {exc}")
            raise typer.Exit(1) from exc
