"""Every route that changes something writes its audit entry: who (the token), what, which object.

The app's mutating routes are found by walking its routes, and each must have a case below
(or a reason in ``EXEMPT``), so a new route cannot land unaudited. A case makes what its
call needs, then sends that one request; the test checks that exactly the entries the case
names were written, by the caller's token, and that no secret sent along reached the log.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.api.app import API
from labfleet.db.models import ApiToken, AuditEntry, Pipeline, PipelineStage
from labfleet.services.core import alerts as raising
from labfleet.storage import LocalStore
from tests import factories
from tests.api.test_artifacts import _artifact as stored_artifact
from tests.api.test_builds_api import add_server, build
from tests.api.test_flashing_api import artifact as plain_artifact
from tests.api.test_flashing_api import board as flashable_board
from tests.api.test_pipelines_api import add_build, add_host, env, plan
from tests.db.build_rows import EPOCH
from tests.helpers import free_port

MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
SECRET_KEYS = ("password", "private_key", "secret", "token")
"""A request field whose name holds one of these carries a secret (as the README's credentials do)."""

Body = dict[str, Any]
Route = tuple[str, str]
"""(method, path template), as the app declares it: ``("PUT", "/api/v1/boards/{id}/power")``."""
Audited = tuple[str, int | None, str]
"""(object_type, object_id, action) of one audit entry."""


@dataclass
class Call:
    """What a case works with: the API as a role, the database, and the one request under test."""

    client: httpx.AsyncClient
    session: AsyncSession
    app: FastAPI
    tmp_path: Path
    headers: dict[str, dict[str, str]]
    route: Route
    role: str
    secrets: set[str] = field(default_factory=set)
    mark: int | None = None
    """The newest audit entry before the request under test: what came after is its."""
    response: httpx.Response | None = None

    async def api(self, method: str, path: str, json: Any = None, *, role: str | None = None) -> Any:
        """Set something up through the API (``path`` under /api/v1); it must succeed."""
        self.keep_secrets(json)
        r = await self.client.request(method, API + path, json=json, headers=self.headers[role or self.role])
        assert r.is_success, f"setting up with {method} {path}: {r.status_code} {r.text}"
        return r.json() if r.content else None

    async def send(self, json: Any = None, **path_params: object) -> Any:
        """The request under test: this case's route, as this case's role, once."""
        assert self.response is None, "a case sends its route's request once"
        method, template = self.route
        self.keep_secrets(json)
        self.mark = await newest_audit_id(self.session)
        r = await self.client.request(
            method, template.format(**path_params), json=json, headers=self.headers[self.role]
        )
        self.response = r
        assert r.is_success, f"{method} {template}: {r.status_code} {r.text}"
        return r.json() if r.content else None

    def keep_secrets(self, value: Any, *, secret: bool = False) -> None:
        """Remember every secret a request body carries, to look for in the audit log afterwards."""
        if isinstance(value, dict):
            for key, item in value.items():
                self.keep_secrets(item, secret=secret or any(w in key.lower() for w in SECRET_KEYS))
        elif isinstance(value, list):
            for item in value:
                self.keep_secrets(item, secret=secret)
        elif secret and isinstance(value, str):
            self.secret(value)

    def secret(self, value: str) -> None:
        self.secrets.add(value)
        # JSON columns keep a key's line breaks escaped: look for each line as well.
        self.secrets.update(line for line in value.splitlines() if len(line) >= 8)


Case = Callable[[Call], Awaitable[list[Audited]]]


@dataclass(frozen=True)
class Entry:
    role: str
    run: Case


CASES: dict[Route, Entry] = {}

# Mutating routes that rightly write no audit entry, each with the reason. None today: signing
# in is the bearer token of every request, not a route; explaining a choice is `?explain=true`
# on a GET or on the creating POST itself; there is no read-only POST.
EXEMPT: dict[Route, str] = {}


def case(method: str, path: str, role: str = "admin") -> Callable[[Case], Case]:
    def register(run: Case) -> Case:
        route = (method, API + path)
        assert route not in CASES, f"two cases for {method} {path}"
        CASES[route] = Entry(role, run)
        return run

    return register


def mutating_routes(app: FastAPI) -> set[Route]:
    found = set()
    for route in iter_route_contexts(app.routes):
        path = route.path or ""
        if path.startswith(f"{API}/"):
            found.update((method, path) for method in route.methods or () if method in MUTATING)
    return found


async def newest_audit_id(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.max(AuditEntry.id))) or 0)


# -- the inventory: build servers, hosts, boards (admins). An update replaces only credentials
# the member already has: nothing else changes, and that is still a change.

INVENTORY: list[tuple[str, str, Callable[[], Body], Callable[[Body], Body]]] = [
    ("build-servers", "build_server", factories.build_server, lambda _: {"ssh": {"password": "bs-new-pw"}}),
    ("hosts", "host", factories.host, lambda _: {"ssh": {"private_key": factories.TEST_KEY}}),
    (
        "boards",
        "board",
        factories.board,
        lambda sent: {"power": {**sent["power"], "secret": {"password": "pdu-new-pw"}}},
    ),
]


def _inventory_cases(
    collection: str,
    object_type: str,
    payload: Callable[[], Body],
    new_credentials: Callable[[Body], Body],
) -> None:
    @case("POST", f"/{collection}")
    async def create(call: Call) -> list[Audited]:
        made = await call.send(json=payload())
        return [(object_type, made["id"], "create")]

    @case("PATCH", f"/{collection}/{{id}}")
    async def change(call: Call) -> list[Audited]:
        sent = payload()
        made = await call.api("POST", f"/{collection}", sent)
        await call.send(id=made["id"], json=new_credentials(sent))
        return [(object_type, made["id"], "update")]

    @case("DELETE", f"/{collection}/{{id}}")
    async def remove(call: Call) -> list[Audited]:
        made = await call.api("POST", f"/{collection}", payload())
        await call.send(id=made["id"])
        return [(object_type, made["id"], "delete")]

    @case("PUT", f"/{collection}/{{id}}/status")
    async def maintenance(call: Call) -> list[Audited]:
        made = await call.api("POST", f"/{collection}", payload())
        await call.send(id=made["id"], json={"status": "maintenance"})
        return [(object_type, made["id"], "update")]


for _inventory in INVENTORY:
    _inventory_cases(*_inventory)


# -- power: the board's controller is a pdudaemon nobody listens for, so each action fails at
# the device, and is still recorded, and audited as it was asked.


async def unpowerable_board(call: Call) -> int:
    body = factories.board(
        console_url=None,
        ssh={"address": "10.3.0.10", "password": "board-ssh-pw"},
        power={
            "driver": "pdudaemon",
            "url": f"http://127.0.0.1:{free_port()}",
            "pdu": "pdu-1",
            "outlet": 1,
            "secret": {"password": "pdu-secret-pw"},
        },
    )
    return int((await call.api("POST", "/boards", body, role="admin"))["id"])


@case("PUT", "/boards/{id}/power", role="operator")
async def switch_power(call: Call) -> list[Audited]:
    board = await unpowerable_board(call)
    action = await call.send(id=board, json={"state": "off"})
    assert (action["status"]["value"], action["action"]) == ("failed", "off")
    assert "outlet 1" in action["error"]
    return [("power-action", action["id"], "power-off")]


@case("POST", "/boards/{id}/power-cycle", role="operator")
async def cycle_power(call: Call) -> list[Audited]:
    board = await unpowerable_board(call)
    action = await call.send(id=board, json={"off_s": 0})
    # The controller failed: the board's status stays (only a boot that fails changes it).
    assert (action["status"]["value"], action["action"]) == ("failed", "cycle")
    return [("power-action", action["id"], "power-cycle")]


# -- flashing: only queued here (the engine writes the image), and the board becomes flashing


@case("POST", "/boards/{id}/flash", role="operator")
async def flash(call: Call) -> list[Audited]:
    board = await flashable_board(call.session)
    image = await plain_artifact(call.session)
    job = await call.send(id=board.id, json={"artifact_id": image.id})
    return [("flash-job", job["id"], "create"), ("board", board.id, "update")]


# -- builds


@case("POST", "/build-jobs", role="operator")
async def submit_build(call: Call) -> list[Audited]:
    await add_server(call.session, "b1", ("x86_64",))
    job = await call.send(json=build())
    return [("build_job", job["id"], "create")]


@case("POST", "/build-jobs/{id}/cancel", role="operator")
async def cancel_build(call: Call) -> list[Audited]:
    await add_server(call.session, "b1", ("x86_64",))
    job = await call.api("POST", "/build-jobs", build())
    await call.send(id=job["id"])
    return [("build_job", job["id"], "cancel")]


@case("POST", "/build-jobs/{id}/retry", role="operator")
async def retry_build(call: Call) -> list[Audited]:
    await add_server(call.session, "b1", ("x86_64",))
    job = await call.api("POST", "/build-jobs", build())
    await call.api("POST", f"/build-jobs/{job['id']}/cancel")
    again = await call.send(id=job["id"])
    return [("build_job", again["id"], "retry")]


# -- reservations


async def reservation(call: Call) -> int:
    host = await add_host(call.session, "kvm-1")
    held = await call.api("POST", "/reservations", {"host_id": host, "vcpus": 2, "purpose": "audit walk"})
    return int(held["id"])


@case("POST", "/reservations", role="operator")
async def reserve(call: Call) -> list[Audited]:
    host = await add_host(call.session, "kvm-1")
    held = await call.send(json={"host_id": host, "vcpus": 2, "purpose": "audit walk"})
    return [("reservation", held["id"], "create")]


@case("POST", "/reservations/{id}/extend", role="operator")
async def extend_reservation(call: Call) -> list[Audited]:
    held = await reservation(call)
    await call.send(id=held, json={"expires_in_s": 7200})
    return [("reservation", held, "extend")]


@case("POST", "/reservations/{id}/release", role="operator")
async def release_reservation(call: Call) -> list[Audited]:
    held = await reservation(call)
    await call.send(id=held)
    return [("reservation", held, "release")]


# -- alerts (operators): what a person says of one


async def an_alert(call: Call) -> int:
    alert = await raising.raise_alert(
        session=call.session,
        resource_kind="host",
        resource_id=1,
        kind="unreachable",
        severity="critical",
        message="host kvm-1 did not answer",
    )
    await call.session.commit()
    return alert.id


@case("POST", "/alerts/{id}/acknowledge", role="operator")
async def acknowledge_alert(call: Call) -> list[Audited]:
    ident = await an_alert(call)
    await call.send(id=ident, json={"comment": "on it"})
    return [("alert", ident, "acknowledge")]


@case("POST", "/alerts/{id}/resolve", role="operator")
async def resolve_alert(call: Call) -> list[Audited]:
    ident = await an_alert(call)
    await call.send(id=ident, json={"comment": "fixed"})
    return [("alert", ident, "resolve")]


# -- pipelines and environments


@case("POST", "/pipelines", role="operator")
async def run_pipeline(call: Call) -> list[Audited]:
    await add_server(call.session, "b1", ("x86_64",))
    p = await call.send(json=plan())
    return [("pipeline", p["id"], "create")]


@case("POST", "/pipelines/{id}/cancel", role="operator")
async def cancel_pipeline(call: Call) -> list[Audited]:
    await add_server(call.session, "b1", ("x86_64",))
    p = await call.api("POST", "/pipelines", plan())
    await call.send(id=p["id"])
    return [("pipeline", p["id"], "cancel")]


@case("POST", "/pipelines/{id}/retry", role="operator")
async def retry_pipeline(call: Call) -> list[Audited]:
    await add_server(call.session, "b1", ("x86_64",))
    p = await call.api("POST", "/pipelines", plan())
    # As its worker leaves a pipeline whose build failed.
    await call.session.execute(update(Pipeline).where(Pipeline.id == p["id"]).values(status="failed"))
    await call.session.execute(
        update(PipelineStage).where(PipelineStage.pipeline_id == p["id"]).values(status="skipped")
    )
    await call.session.execute(
        update(PipelineStage)
        .where(PipelineStage.pipeline_id == p["id"], PipelineStage.name == "build")
        .values(status="failed", attempt=1)
    )
    await call.session.commit()
    await call.send(id=p["id"], json={"stage": "build"})
    return [("pipeline", p["id"], "retry")]


async def environment_request(call: Call) -> Body:
    await add_host(call.session, "kvm-1")
    return env(await add_build(call.session, architecture="x86_64", types=("kernel", "initramfs")))


@case("POST", "/environments", role="operator")
async def create_environment(call: Call) -> list[Audited]:
    made = await call.send(json=await environment_request(call))
    # What it holds is a reservation, made (and audited) with it.
    return [("environment", made["id"], "create"), ("reservation", made["reservation_id"], "create")]


@case("POST", "/environments/{id}/release", role="operator")
async def release_environment(call: Call) -> list[Audited]:
    made = await call.api("POST", "/environments", await environment_request(call))
    await call.send(id=made["id"])
    return [("environment", made["id"], "release")]


# -- artifacts


@case("POST", "/artifacts/retention")
async def run_retention(call: Call) -> list[Audited]:
    store = call.app.state.store = LocalStore(call.tmp_path / "artifacts")
    old = await stored_artifact(call.session, store, call.tmp_path, data=b"day 1", created_at=EPOCH)
    await stored_artifact(
        call.session, store, call.tmp_path, data=b"day 2", created_at=EPOCH + timedelta(days=1)
    )
    removed = await call.send(json={"keep_last": 1})
    assert [a["id"] for a in removed["items"]] == [old["id"]]
    return [("artifact", old["id"], "delete")]


@case("POST", "/artifacts/{id}/pin", role="operator")
async def pin(call: Call) -> list[Audited]:
    image = await plain_artifact(call.session)
    await call.send(id=image.id)
    return [("artifact", image.id, "update")]


@case("DELETE", "/artifacts/{id}/pin", role="operator")
async def unpin(call: Call) -> list[Audited]:
    image = await plain_artifact(call.session)
    await call.api("POST", f"/artifacts/{image.id}/pin")
    await call.send(id=image.id)
    return [("artifact", image.id, "update")]


# -- notification channels (admins)

WEBHOOK = {
    "name": "lab-hook",
    "target": {
        "transport": "webhook",
        "url": "https://hooks.lab.example/labfleet",
        "secret": "s3cret-signing-key-0123",
    },
}


@case("POST", "/notification-channels")
async def create_channel(call: Call) -> list[Audited]:
    made = await call.send(json=WEBHOOK)
    return [("notification-channel", made["id"], "create")]


@case("PATCH", "/notification-channels/{id}")
async def update_channel(call: Call) -> list[Audited]:
    made = await call.api("POST", "/notification-channels", WEBHOOK)
    target = {**WEBHOOK["target"], "secret": "another-signing-key-4567"}
    await call.send(id=made["id"], json={"min_severity": "critical", "target": target})
    return [("notification-channel", made["id"], "update")]


@case("DELETE", "/notification-channels/{id}")
async def delete_channel(call: Call) -> list[Audited]:
    made = await call.api("POST", "/notification-channels", WEBHOOK)
    await call.send(id=made["id"])
    return [("notification-channel", made["id"], "delete")]


# -- settings (admins)


@case("PUT", "/settings")
async def put_settings(call: Call) -> list[Audited]:
    await call.send(
        json={"check_interval_seconds": {"board": 30}, "thresholds": {"host": {"failure_limit": 5}}}
    )
    return [("settings", None, "update")]


# -- tokens


@case("POST", "/tokens")
async def create_token(call: Call) -> list[Audited]:
    made = await call.send(json={"name": "ci-bot", "role": "operator", "team": "kernel"})
    call.secret(made["token"])
    return [("token", made["id"], "create")]


@case("DELETE", "/tokens/{id}")
async def revoke_token(call: Call) -> list[Audited]:
    made = await call.api("POST", "/tokens", {"name": "ci-bot", "role": "operator"})
    call.secret(made["token"])
    await call.send(id=made["id"])
    return [("token", made["id"], "revoke")]


# -- the tests


def _names(routes: set[Route]) -> str:
    return ", ".join(f"{method} {path}" for method, path in sorted(routes, key=lambda r: (r[1], r[0])))


def test_every_mutating_route_has_an_audit_case_or_a_reason(routed_app: FastAPI) -> None:
    routes = mutating_routes(routed_app)
    assert not CASES.keys() & EXEMPT.keys(), "both a case and exempt: " + _names(CASES.keys() & EXEMPT.keys())
    missing = routes - CASES.keys() - EXEMPT.keys()
    assert not missing, (
        "mutating routes nobody checks for an audit entry (add a case to CASES in this file, or the "
        f"reason it writes none to EXEMPT): {_names(missing)}"
    )
    stale = (CASES.keys() | EXEMPT.keys()) - routes
    assert not stale, f"cases for routes the app no longer has: {_names(stale)}"


@pytest.mark.parametrize("route", sorted(CASES), ids=lambda route: f"{route[0]} {route[1]}")
async def test_the_route_writes_exactly_its_audit_entries(
    route: Route,
    client: httpx.AsyncClient,
    session: AsyncSession,
    app: FastAPI,
    as_role: dict[str, dict[str, str]],
    tokens_by_role: dict[str, str],
    tmp_path: Path,
) -> None:
    entry = CASES[route]
    call = Call(client, session, app, tmp_path, as_role, route, entry.role)
    expected = await entry.run(call)
    assert call.mark is not None, "the case never sent its route's request"

    written = list(
        await session.scalars(select(AuditEntry).where(AuditEntry.id > call.mark).order_by(AuditEntry.id))
    )
    assert sorted((e.object_type, e.object_id, e.action) for e in written) == sorted(expected)
    name = f"t-{entry.role}"
    token_id = await session.scalar(select(ApiToken.id).where(ApiToken.name == name))
    assert token_id is not None
    assert [(e.actor, e.token_id) for e in written] == [(name, token_id)] * len(written)

    log = repr((await session.execute(text("SELECT * FROM audit_log"))).all())
    secrets = call.secrets | set(tokens_by_role.values())
    leaked = sorted(s for s in secrets if s in log)
    assert not leaked, f"secrets in the audit log: {leaked}"
