"""API tokens, managed by admins."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from labfleet.api import render
from labfleet.api.deps import Admin, SessionDep
from labfleet.api.problems import responses
from labfleet.schemas.common import Page
from labfleet.schemas.enums import Role
from labfleet.schemas.tokens import TokenCreate, TokenCreated, TokenOut
from labfleet.services.core import tokens

router = APIRouter(prefix="/tokens", tags=["tokens"], responses=responses(401, 403, 422))


@router.get("", response_model=Page[TokenOut], summary="List tokens")
async def list_tokens(session: SessionDep, _: Admin) -> Page[TokenOut]:
    rows = await tokens.list_all(session=session)
    return Page(count=len(rows), items=[render.token(t) for t in rows])


@router.post(
    "",
    response_model=TokenCreated,
    status_code=status.HTTP_201_CREATED,
    summary="Create a token",
    responses=responses(409),
)
async def create_token(session: SessionDep, actor: Admin, data: TokenCreate) -> TokenCreated:
    row, secret = await tokens.create(
        session=session,
        actor=actor,
        name=data.name,
        role=Role[data.role],
        team=data.team,
        expires_at=data.expires_at,
    )
    await session.commit()
    return TokenCreated(**render.token(row).model_dump(), token=secret)


@router.delete(
    "/{id}", status_code=status.HTTP_204_NO_CONTENT, summary="Revoke a token", responses=responses(404)
)
async def revoke_token(
    session: SessionDep, actor: Admin, ident: Annotated[int, Path(alias="id")]
) -> Response:
    await tokens.revoke(session=session, actor=actor, name_or_id=ident)
    await session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
