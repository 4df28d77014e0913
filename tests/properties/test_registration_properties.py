"""Properties 1, 8 and 12: a valid registration adds exactly that member; an invalid one adds nothing.

Run at the service level, on SQLite and PostgreSQL. Each example works in a SAVEPOINT
that is rolled back, so examples do not see each other.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest
from cryptography.fernet import Fernet
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.db.models import Board, BuildServer, Host
from labfleet.errors import Conflict, Invalid, Unreachable
from labfleet.schemas.auth import SYSTEM
from labfleet.schemas.boards import BoardCreate
from labfleet.schemas.build_servers import BuildServerCreate
from labfleet.schemas.enums import ARCHITECTURE_ALIASES
from labfleet.schemas.hosts import HostCreate
from labfleet.secretbox import SecretBox
from labfleet.services.inventory import boards, build_servers, hosts
from labfleet.services.inventory.registration import InputOnly
from tests.helpers import example, pool_size
from tests.properties import strategies

BOX = SecretBox(Fernet.generate_key())
PROPERTY = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


class Unplugged(InputOnly):
    """A validator whose every device is unreachable."""

    async def build_server(self, data: Any) -> Any:
        raise Unreachable(f"{data.address}:{data.ssh.port}: connection refused", field="address")

    async def host(self, data: Any) -> Any:
        raise Unreachable(f"{data.address}: connection refused", field="address")

    async def board(self, data: Any) -> Any:
        raise Unreachable("the console said nothing", field="console_url")


CASES: list[tuple[str, ModuleType, type[Any], type[Any], Callable[[], Any], tuple[str, ...]]] = [
    (
        "property_1_build_server",
        build_servers,
        BuildServerCreate,
        BuildServer,
        strategies.build_servers,
        ("hostname", "address"),
    ),
    ("property_8_host", hosts, HostCreate, Host, strategies.hosts, ("hostname", "address")),
    ("property_12_board", boards, BoardCreate, Board, strategies.boards, ("name", "serial_number")),
]


def expected_view(payload: dict[str, Any]) -> dict[str, Any]:
    """What the stored member must show of a submitted payload."""
    view = {k: v for k, v in payload.items() if k not in ("ssh", "power", "labels", "peripherals")}
    if "architecture" in view:
        view["architecture"] = ARCHITECTURE_ALIASES.get(view["architecture"], view["architecture"])
        view["architecture"] = str(getattr(view["architecture"], "value", view["architecture"]))
    return view


@pytest.mark.parametrize(
    ("name", "service", "schema", "model", "strategy", "unique"), CASES, ids=[c[0] for c in CASES]
)
@PROPERTY
@given(draw=st.data())
async def test_valid_registration_adds_exactly_that_member(
    session: AsyncSession,
    name: str,
    service: Any,
    schema: Any,
    model: Any,
    strategy: Any,
    unique: Any,
    draw: st.DataObject,
) -> None:
    # Validates: 1.2, 1.3 (property 1); 7.2, 7.3 (property 8); 8.2, 8.3 (property 12)
    payload = draw.draw(strategy(), label="payload")
    async with example(session):
        before, _ = await pool_size(session, model)
        data = schema.model_validate(payload)
        created = await service.register(
            session=session, actor=SYSTEM, secrets=BOX, validator=InputOnly(), data=data
        )
        after, _ = await pool_size(session, model)
        assert after == before + 1
        stored = await service.get(session=session, ident=created.id)
        for field in expected_view(payload):
            submitted = getattr(data, field)
            assert getattr(stored, field) == getattr(submitted, "value", submitted), field
        if "ssh" in payload:
            assert (stored.ssh_user, stored.ssh_port) == (payload["ssh"]["username"], payload["ssh"]["port"])
            assert (stored.ssh_secret is not None) == ("password" in payload["ssh"])
        if "power" in payload:
            assert stored.power_driver == payload["power"]["driver"]
        assert sorted(p.name for p in getattr(stored, "peripherals", [])) == sorted(
            payload.get("peripherals", [])
        )
        assert {lbl.key: lbl.value for lbl in stored.labels} == payload.get("labels", {})
        assert stored.status == "online"


@pytest.mark.parametrize(
    ("name", "service", "schema", "model", "strategy", "unique"), CASES, ids=[c[0] for c in CASES]
)
@PROPERTY
@given(draw=st.data(), fault=st.sampled_from(["duplicate-0", "duplicate-1", "unreachable"]))
async def test_invalid_registration_adds_nothing(
    session: AsyncSession,
    name: str,
    service: Any,
    schema: Any,
    model: Any,
    strategy: Any,
    unique: Any,
    draw: st.DataObject,
    fault: str,
) -> None:
    # Validates: 1.2, 1.4 (property 1); 7.2, 7.4 (property 8); 8.2, 8.4 (property 12)
    first = draw.draw(strategy(), label="existing")
    second = draw.draw(strategy(), label="new")
    async with example(session):
        existing = schema.model_validate(first)
        await service.register(
            session=session, actor=SYSTEM, secrets=BOX, validator=InputOnly(), data=existing
        )
        before = await pool_size(session, model)
        validator = InputOnly()
        if fault == "unreachable":
            validator = Unplugged()
            # Unique values of its own, so that only the device can refuse it.
            second = {
                **second,
                unique[0]: "x" + str(second[unique[0]]),
                unique[1]: "y" + str(second[unique[1]]),
            }
            if unique[1] == "address":
                second[unique[1]] = "unreachable.lab"
            expected: type[Exception] = Invalid
        else:
            field = unique[int(fault[-1])]
            second = {**second, field: first[field]}
            expected = Conflict
        data = schema.model_validate(second)
        with pytest.raises(expected) as info:
            await service.register(session=session, actor=SYSTEM, secrets=BOX, validator=validator, data=data)
        assert info.value.field is not None
        assert await pool_size(session, model) == before
