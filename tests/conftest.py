"""Databases for the tests, built through the real migrations, on SQLite and PostgreSQL.

Every database test runs twice, once per backend. Each test works inside a transaction
that is rolled back afterwards; the code under test commits to a SAVEPOINT.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet
from fastapi import FastAPI
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, create_async_engine
from xdist.scheduler import LoadScopeScheduling

from labfleet.api.app import build_policy, create_app
from labfleet.api.deps import get_session
from labfleet.config import Settings, normalize_database_url
from labfleet.db import migrate
from labfleet.db.engine import create_engine
from labfleet.schemas.auth import SYSTEM
from labfleet.schemas.enums import Role
from labfleet.secretbox import SecretBox
from labfleet.services.core import tokens
from labfleet.services.core.events import EventBus
from labfleet.services.health.probes import NoProbe
from labfleet.services.inventory.registration import InputOnly

BACKENDS = ("sqlite", "postgresql")


LAB_TESTS = "tests/lab/"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The lab's tests first: they are the longest stretch of the run, so they start at once."""
    items.sort(key=lambda item: not item.nodeid.startswith(LAB_TESTS))


def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> LoadScopeScheduling:
    """Every test of the virtual lab runs on one xdist worker, one after another: there is one lab.

    Its boards, PDU and libvirt host are shared devices; two tests powering the same board
    at once would each see the other's doing. Every other test is a scope of its own and
    goes to whichever worker is free.
    """
    return OneLab(config, log)


class OneLab(LoadScopeScheduling):
    def _split_scope(self, nodeid: str) -> str:
        return LAB_TESTS if nodeid.startswith(LAB_TESTS) else nodeid


# A server where the tests may create and drop databases of their own.
PG_ADMIN_URL = normalize_database_url(
    os.environ.get("LABFLEET_TEST_PG_URL", "postgresql://labfleet:labfleet@127.0.0.1:5432/postgres")
)


async def _pg_admin(statement: str) -> None:
    engine = create_async_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(statement))
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def migrated_urls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """One migrated database per backend for the whole run, and a PostgreSQL template.

    No test connects to the template, so copying it (CREATE DATABASE ... TEMPLATE) never
    finds it in use.
    """
    sqlite_path = tmp_path_factory.mktemp("db") / "labfleet.db"
    sqlite_url = f"sqlite+aiosqlite:///{sqlite_path}"
    migrate.upgrade(sqlite_url)

    suffix = uuid.uuid4().hex[:12]
    names = {"template": f"labfleet_tpl_{suffix}", "postgresql": f"labfleet_test_{suffix}"}
    urls = {"sqlite": sqlite_url}
    urls |= {
        key: make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
        for key, name in names.items()
    }
    try:
        asyncio.run(_pg_admin(f'CREATE DATABASE "{names["template"]}"'))
        migrate.upgrade(urls["template"])
        # The same migrations, copied: cheaper than running them again.
        asyncio.run(_pg_admin(f'CREATE DATABASE "{names["postgresql"]}" TEMPLATE "{names["template"]}"'))
        yield urls
    finally:
        for name in names.values():
            asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


class Dropper:
    """Drops the tests' own PostgreSQL databases behind their backs, one after another.

    DROP DATABASE waits for a checkpoint, a second or more on a busy server; only the end
    of the run needs them gone, so no test waits for that. A failed drop fails the run.
    """

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="drop-database")
        self._drops: list[Future[None]] = []

    def drop(self, name: str) -> None:
        statement = f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
        self._drops.append(self._pool.submit(lambda: asyncio.run(_pg_admin(statement))))

    def finish(self) -> None:
        self._pool.shutdown(wait=True)
        for done in self._drops:
            done.result()


@pytest.fixture(scope="session")
def dropper() -> Iterator[Dropper]:
    dropper = Dropper()
    try:
        yield dropper
    finally:
        dropper.finish()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db_url(backend: str, migrated_urls: dict[str, str]) -> str:
    return migrated_urls[backend]


@pytest.fixture
async def connection(db_url: str) -> AsyncIterator[AsyncConnection]:
    engine = create_engine(db_url)
    try:
        async with engine.connect() as conn:
            outer = await conn.begin()
            yield conn
            await outer.rollback()
    finally:
        await engine.dispose()


@pytest.fixture
async def session(connection: AsyncConnection) -> AsyncIterator[AsyncSession]:
    async with AsyncSession(
        bind=connection, expire_on_commit=False, autoflush=False, join_transaction_mode="create_savepoint"
    ) as s:
        yield s


@pytest.fixture
def fresh_db_url(
    backend: str, migrated_urls: dict[str, str], dropper: Dropper, tmp_path: Path
) -> Iterator[str]:
    """A database of this test's own, for code that commits for real (several sessions)."""
    if backend == "sqlite":
        source = make_url(migrated_urls["sqlite"]).database
        assert source is not None
        target = tmp_path / "labfleet.db"
        shutil.copy(source, target)
        yield f"sqlite+aiosqlite:///{target}"
        return
    name = f"labfleet_t_{uuid.uuid4().hex[:12]}"
    template = make_url(migrated_urls["template"]).database
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    try:
        yield make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        dropper.drop(name)


# An app wired to the test's session, and a token per role.


@pytest.fixture
def secrets() -> SecretBox:
    return SecretBox(Fernet.generate_key())


@pytest.fixture(scope="session")
def routed_app(tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    """The app that serves every test's requests.

    FastAPI prepares a route's handling the first time an app matches a request to it; a new
    app per test would spend much of the test doing that again.
    """
    return create_app(Settings(data_dir=tmp_path_factory.mktemp("app"), engine=False))


@pytest.fixture
async def app(routed_app: FastAPI, session: AsyncSession, secrets: SecretBox, tmp_path: Path) -> FastAPI:
    """An app of this test's own, wired to its session: its state and dependency overrides,
    served by ``routed_app``. Nothing a test sets on them outlives it."""
    settings = Settings(data_dir=tmp_path, engine=False)
    app = create_app(settings)
    # httpx's ASGI transport runs no lifespan: what it would set up, set up here.
    app.state.secrets = secrets
    app.state.validator = InputOnly()
    app.state.policy = build_policy(settings)
    app.state.bus = EventBus()
    app.state.probe = NoProbe()

    async def test_session() -> AsyncIterator[AsyncSession]:
        try:
            yield session
        finally:
            # As a closing session would: whatever the request did not commit is gone.
            await session.rollback()

    app.dependency_overrides[get_session] = test_session
    routed_app.state = app.state
    routed_app.dependency_overrides = app.dependency_overrides
    return routed_app


@pytest.fixture
async def tokens_by_role(session: AsyncSession) -> dict[str, str]:
    made = {}
    for role in Role:
        _, secret = await tokens.create(session=session, actor=SYSTEM, name=f"t-{role.name}", role=role)
        made[role.name] = secret
    await session.commit()
    return made


@pytest.fixture
async def client(app: FastAPI, tokens_by_role: dict[str, str]) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {tokens_by_role['admin']}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://lab", headers=headers) as c:
        yield c


@pytest.fixture
def as_role(tokens_by_role: dict[str, str]) -> dict[str, dict[str, str]]:
    return {role: {"Authorization": f"Bearer {token}"} for role, token in tokens_by_role.items()}
