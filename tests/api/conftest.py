"""An app wired to the test's session, and a token per role."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.api.app import create_app
from labfleet.api.deps import get_session
from labfleet.config import Settings
from labfleet.schemas.auth import SYSTEM
from labfleet.schemas.enums import Role
from labfleet.secretbox import SecretBox
from labfleet.services import tokens
from labfleet.services.validation import InputOnly


@pytest.fixture
def secrets() -> SecretBox:
    return SecretBox(Fernet.generate_key())


@pytest.fixture
async def app(session: AsyncSession, secrets: SecretBox, tmp_path: Path) -> FastAPI:
    app = create_app(Settings(data_dir=tmp_path))
    app.state.secrets = secrets
    app.state.validator = InputOnly()

    async def test_session() -> AsyncIterator[AsyncSession]:
        try:
            yield session
        finally:
            # As a closing session would: whatever the request did not commit is gone.
            await session.rollback()

    app.dependency_overrides[get_session] = test_session
    return app


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
