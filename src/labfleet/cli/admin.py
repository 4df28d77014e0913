"""Commands that work on the configured database itself: serve, db, token."""

from __future__ import annotations

import asyncio
import getpass
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, TypeVar

import typer
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.cli.output import out, show_json, show_table
from labfleet.config import Settings
from labfleet.db import migrate
from labfleet.db.engine import create_engine, session_factory
from labfleet.schemas.auth import Actor
from labfleet.schemas.enums import Role
from labfleet.services.core import tokens

T = TypeVar("T")

# Commands here act on the database directly, as whoever runs them on this machine.
CLI_ACTOR = Actor(name=f"cli:{getpass.getuser()}", role=Role.admin)

db_app = typer.Typer(help="The database: migrations.", no_args_is_help=True)
token_app = typer.Typer(
    help="API tokens, straight on the database (bootstrap and recovery).", no_args_is_help=True
)


def _in_session(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    async def run() -> T:
        engine = create_engine(settings.effective_database_url)
        try:
            async with session_factory(engine)() as session:
                result = await work(session)
                await session.commit()
                return result
        finally:
            await engine.dispose()

    return asyncio.run(run())


def prepare(settings: Settings) -> str | None:
    """Migrate the database and, on an empty one, create the first admin token."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    migrate.upgrade(settings.effective_database_url)
    try:
        return _in_session(settings, lambda s: tokens.bootstrap_admin(session=s, actor=CLI_ACTOR))
    except IntegrityError:
        return None  # another process starting at the same time made the first token


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument()] = "head") -> None:
    """Apply migrations up to REVISION (default: the newest)."""
    settings = Settings()
    migrate.upgrade(settings.effective_database_url, revision)
    out.print(f"database at {revision}")


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Option(help="Unique name, e.g. the user or CI system.")],
    role: Annotated[str, typer.Option(help="viewer, operator or admin.")] = "viewer",
    team: Annotated[str | None, typer.Option(help="Team the token acts for.")] = None,
    expires: Annotated[datetime | None, typer.Option(help="Expiry (ISO 8601, UTC).")] = None,
) -> None:
    """Create a token and print it; it is shown only this once."""
    try:
        role_value = Role.parse(role)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--role") from exc
    settings = Settings()
    migrate.upgrade(settings.effective_database_url)

    async def work(session: AsyncSession) -> str:
        from datetime import UTC

        expires_at = expires.replace(tzinfo=UTC) if expires and expires.tzinfo is None else expires
        _, secret = await tokens.create(
            session=session, actor=CLI_ACTOR, name=name, role=role_value, team=team, expires_at=expires_at
        )
        return secret

    print(_in_session(settings, work))


@token_app.command("list")
def token_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List tokens (never their secrets)."""

    async def work(session: AsyncSession) -> list[dict[str, Any]]:
        return [
            {
                "id": t.id,
                "name": t.name,
                "role": t.role,
                "team": t.team,
                "prefix": t.prefix,
                "created_at": t.created_at.isoformat(),
                "last_used_at": t.last_used_at.isoformat() if t.last_used_at else None,
                "revoked_at": t.revoked_at.isoformat() if t.revoked_at else None,
            }
            for t in await tokens.list_all(session=session)
        ]

    rows = _in_session(Settings(), work)
    if as_json:
        show_json(rows)
    else:
        show_table(rows, ("id", "name", "role", "team", "prefix", "last_used_at", "revoked_at"))


@token_app.command("revoke")
def token_revoke(name: Annotated[str, typer.Argument(help="Token name or id.")]) -> None:
    """Revoke a token at once."""
    key: str | int = int(name) if name.isdigit() else name
    _in_session(Settings(), lambda s: tokens.revoke(session=s, actor=CLI_ACTOR, name_or_id=key))
    out.print(f"revoked {name}")
