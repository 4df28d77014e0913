"""The five operations every inventory collection offers, built once.

(No ``from __future__ import annotations`` here: FastAPI reads the parameter types of
the functions built below at run time, and they are local to ``inventory_router``.)
"""

from collections.abc import Callable
from enum import StrEnum
from typing import Annotated, Any, Protocol

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.api.deps import Admin, SecretsDep, SessionDep, ValidatorDep, Viewer
from labfleet.api.problems import responses
from labfleet.schemas.auth import Actor
from labfleet.schemas.common import Page
from labfleet.schemas.query import MAX_PAGE, LabelFilter, ListQuery
from labfleet.secretbox import SecretBox
from labfleet.services.inventory.registration import RegistrationValidator


class InventoryService(Protocol):
    """What ``build_servers``, ``hosts`` and ``boards`` of ``services.inventory`` provide."""

    async def register(
        self,
        *,
        session: AsyncSession,
        actor: Actor,
        secrets: SecretBox,
        validator: RegistrationValidator,
        data: Any,
    ) -> Any: ...

    async def get(self, *, session: AsyncSession, ident: int) -> Any: ...

    async def search(self, *, session: AsyncSession, query: ListQuery) -> tuple[int, list[Any]]: ...

    async def update(
        self, *, session: AsyncSession, actor: Actor, secrets: SecretBox, ident: int, data: Any
    ) -> Any: ...

    async def remove(self, *, session: AsyncSession, actor: Actor, ident: int) -> None: ...


def api_base(request: Request) -> str:
    return f"{str(request.base_url).rstrip('/')}/api/v1"


# long: it only declares the five routes, whose parameter types are local to it (see above).
def inventory_router(
    *,
    path: str,
    noun: str,
    service: InventoryService,
    create: type[BaseModel],
    update: type[BaseModel],
    out: type[BaseModel],
    render: Callable[[Any, str], Any],
    statuses: type[StrEnum],
    filters: Callable[..., dict[str, Any]],
) -> APIRouter:
    router = APIRouter(prefix=path, tags=[path.strip("/")], responses=responses(401, 403, 422))
    Ident = Annotated[int, Path(alias="id", description=f"The {noun}'s id.")]
    Filters = Annotated[dict[str, Any], Depends(filters)]
    slug = path.strip("/").replace("-", "_")
    PageOut = Page[out]  # type: ignore[valid-type]

    @router.get("", response_model=PageOut, summary=f"List {noun}s", operation_id=f"list_{slug}")
    async def list_items(
        request: Request,
        session: SessionDep,
        _: Viewer,
        fields: Filters,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
        offset: Annotated[int, Query(ge=0)] = 0,
        status_: Annotated[
            list[statuses] | None,  # type: ignore[valid-type]
            Query(alias="status", description="Any of these statuses."),
        ] = None,
        label: Annotated[list[str] | None, Query(description="key=value or key; all must match.")] = None,
        sort: Annotated[str | None, Query(description="Field to sort by; prefix '-' for descending.")] = None,
    ) -> Any:
        query = ListQuery(
            limit=limit,
            offset=offset,
            sort=sort,
            statuses=tuple(str(s) for s in status_ or ()),
            labels=tuple(LabelFilter.parse(text) for text in label or ()),
            fields=fields,
        )
        total, items = await service.search(session=session, query=query)
        base = api_base(request)
        page = PageOut(count=total, items=[render(item, base) for item in items])
        # Already validated while rendering: serialize once, without a second pass.
        return Response(page.model_dump_json(), media_type="application/json")

    @router.post(
        "",
        response_model=out,
        status_code=status.HTTP_201_CREATED,
        summary=f"Register a {noun}",
        operation_id=f"create_{slug}",
        responses=responses(409),
    )
    async def create_item(
        request: Request,
        response: Response,
        session: SessionDep,
        actor: Admin,
        secrets: SecretsDep,
        validator: ValidatorDep,
        data: create,  # type: ignore[valid-type]
    ) -> Any:
        item = await service.register(
            session=session, actor=actor, secrets=secrets, validator=validator, data=data
        )
        await session.commit()
        rendered = render(item, api_base(request))
        response.headers["Location"] = rendered.url
        return rendered

    @router.get(
        "/{id}",
        response_model=out,
        summary=f"Get a {noun}",
        operation_id=f"get_{slug}",
        responses=responses(404),
    )
    async def get_item(request: Request, session: SessionDep, _: Viewer, ident: Ident) -> Any:
        return render(await service.get(session=session, ident=ident), api_base(request))

    @router.patch(
        "/{id}",
        response_model=out,
        summary=f"Update a {noun}",
        operation_id=f"update_{slug}",
        responses=responses(404, 409),
    )
    async def update_item(
        request: Request,
        session: SessionDep,
        actor: Admin,
        secrets: SecretsDep,
        ident: Ident,
        data: update,  # type: ignore[valid-type]
    ) -> Any:
        item = await service.update(session=session, actor=actor, secrets=secrets, ident=ident, data=data)
        await session.commit()
        return render(item, api_base(request))

    @router.delete(
        "/{id}",
        status_code=status.HTTP_204_NO_CONTENT,
        summary=f"Remove a {noun}",
        operation_id=f"delete_{slug}",
        responses=responses(404, 409),
    )
    async def delete_item(session: SessionDep, actor: Admin, ident: Ident) -> Response:
        await service.remove(session=session, actor=actor, ident=ident)
        await session.commit()
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    return router
