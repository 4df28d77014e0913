"""Artifacts: list, get, ``latest``, download (ETag, ranges, 304), pins and retention runs."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from fastapi.responses import StreamingResponse

from labfleet.api import render
from labfleet.api.deps import Admin, Operator, SessionDep, Viewer
from labfleet.api.problems import problem_response, responses
from labfleet.api.routes.inventory import api_base
from labfleet.errors import Corrupted
from labfleet.schemas.artifacts import ArtifactOut, ArtifactType, LatestOut, RetentionOut, RetentionRun
from labfleet.schemas.common import Page
from labfleet.schemas.query import MAX_PAGE, ListQuery
from labfleet.services.artifacts import service as artifacts

router = APIRouter(prefix="/artifacts", tags=["artifacts"], responses=responses(401, 403, 422))
Ident = Annotated[int, Path(alias="id", description="The artifact's id.")]


def _store(request: Request) -> artifacts.Store:
    store: artifacts.Store = request.app.state.store
    return store


StoreDep = Annotated[artifacts.Store, Depends(_store)]


@router.get("", response_model=Page[ArtifactOut], summary="List artifacts", operation_id="list_artifacts")
async def list_artifacts(
    request: Request,
    session: SessionDep,
    _: Viewer,
    build_id: Annotated[int | None, Query(description="Stored by this build.")] = None,
    commit: Annotated[str | None, Query(max_length=64, description="Built from this exact commit.")] = None,
    repository: Annotated[str | None, Query(max_length=1024, description="Repository URL.")] = None,
    branch: Annotated[str | None, Query(max_length=255)] = None,
    architecture: Annotated[str | None, Query(max_length=32)] = None,
    type_: Annotated[ArtifactType | None, Query(alias="type")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Page[ArtifactOut]:
    fields = {
        "build_job_id": build_id,
        "commit": commit,
        "repository_url": repository,
        "branch": branch,
        "architecture": architecture,
        "type": None if type_ is None else type_.value,
    }
    query = ListQuery(limit=limit, offset=offset, fields=fields)
    total, items = await artifacts.search(session=session, query=query)
    base = api_base(request)
    return Page[ArtifactOut](count=total, items=[render.artifact(a, base) for a in items])


# Declared before /{id}, which would otherwise take "latest" for an id.
@router.get(
    "/latest",
    response_model=LatestOut,
    summary="The artifacts of the newest succeeded build of a branch and architecture",
    operation_id="latest_artifacts",
    responses=responses(404),
)
async def latest_artifacts(
    request: Request,
    session: SessionDep,
    _: Viewer,
    repository: Annotated[str, Query(min_length=1, max_length=1024, description="Repository URL.")],
    branch: Annotated[str, Query(min_length=1, max_length=255)],
    architecture: Annotated[str, Query(min_length=1, max_length=32)],
) -> LatestOut:
    found = await artifacts.latest(
        session=session, repository_url=repository, branch=branch, architecture=architecture
    )
    base = api_base(request)
    return LatestOut(
        build_job_id=found.build.id,
        commit=found.build.resolved_commit or found.build.requested_commit,
        started_at=found.build.started_at,
        finished_at=found.build.finished_at,
        count=len(found.artifacts),
        items=[render.artifact(a, base) for a in found.artifacts],
    )


@router.post(
    "/retention",
    response_model=RetentionOut,
    summary="Apply the retention policy now",
    operation_id="run_artifact_retention",
)
async def run_retention(
    request: Request,
    session: SessionDep,
    actor: Admin,
    store: StoreDep,
    run: RetentionRun | None = None,
) -> RetentionOut:
    policy = await artifacts.policy(session=session)
    keep_last = run.keep_last if run and run.keep_last is not None else policy.keep_last
    max_age_days = run.max_age_days if run and run.max_age_days is not None else policy.max_age_days
    removal = await artifacts.apply_retention(
        session=session,
        store=store,
        now=datetime.now(UTC),
        keep_last=keep_last,
        max_age=None if max_age_days is None else timedelta(days=max_age_days),
        actor=actor,
    )
    await session.commit()
    base = api_base(request)
    return RetentionOut(
        keep_last=keep_last,
        max_age_days=max_age_days,
        count=len(removal.artifacts),
        items=[render.artifact(a, base) for a in removal.artifacts],
        blobs_removed=removal.blobs,
    )


@router.get(
    "/{id}",
    response_model=ArtifactOut,
    summary="Get an artifact",
    operation_id="get_artifact",
    responses=responses(404),
)
async def get_artifact(request: Request, session: SessionDep, _: Viewer, ident: Ident) -> ArtifactOut:
    return render.artifact(await artifacts.get(session=session, ident=ident), api_base(request))


_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


class _Unsatisfiable(Exception):
    """A range that selects no byte of the artifact (416)."""


def _byte_range(header: str, size: int) -> tuple[int, int] | None:
    """``(first, last)`` of a single range; ``None`` to ignore the header and serve it all
    (malformed, or several ranges); ``_Unsatisfiable`` when it selects no byte."""
    match = _RANGE.fullmatch(header.strip())
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # the last N bytes
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise _Unsatisfiable
        return max(0, size - suffix), size - 1
    start = int(first)
    end = size - 1 if not last else min(int(last), size - 1)
    if last and int(last) < start:
        return None  # invalid, so ignored (RFC 9110, 14.1.1)
    if start >= size:
        raise _Unsatisfiable
    return start, end


def _attachment(name: str) -> str:
    # Headers are Latin-1: an ASCII fallback, and the exact name in RFC 8187 form.
    plain = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in name)
    return f"attachment; filename=\"{plain}\"; filename*=UTF-8''{quote(name, safe='')}"


def _etag_matches(header: str, etag: str) -> bool:
    tags = [t.strip().removeprefix("W/") for t in header.split(",")]
    return "*" in tags or etag in tags


@router.get(
    "/{id}/download",
    summary="Download an artifact's bytes (verified; ranges, ETag)",
    operation_id="download_artifact",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"application/octet-stream": {}}, "description": "The whole artifact."},
        206: {"content": {"application/octet-stream": {}}, "description": "One range of it."},
        304: {"description": "Not modified: the ETag (its SHA-256) matched."},
        **responses(404, 416, 500),
    },
)
async def download_artifact(
    session: SessionDep,
    _: Viewer,
    store: StoreDep,
    ident: Ident,
    request: Request,
    range_: Annotated[str | None, Header(alias="range")] = None,
    if_none_match: Annotated[str | None, Header()] = None,
    if_range: Annotated[str | None, Header()] = None,
) -> Response:
    artifact = await artifacts.get(session=session, ident=ident)
    etag = f'"{artifact.sha256}"'
    headers = {"ETag": etag, "Accept-Ranges": "bytes"}
    if if_none_match is not None and _etag_matches(if_none_match, etag):
        return Response(status_code=304, headers=headers)
    wanted = None
    try:
        if range_ is not None and (if_range is None or if_range.strip() == etag):
            wanted = _byte_range(range_, artifact.size)
    except _Unsatisfiable:
        return problem_response(
            request,
            416,
            f"range {range_!r} is outside the artifact's {artifact.size} bytes",
            field="range",
            headers={**headers, "Content-Range": f"bytes */{artifact.size}"},
        )
    offset, length = (0, None) if wanted is None else (wanted[0], wanted[1] - wanted[0] + 1)
    try:
        chunks = await artifacts.open_verified(
            session=session, store=store, artifact=artifact, offset=offset, length=length
        )
    except Corrupted:
        await session.commit()  # the alert stays, whatever the answer
        raise
    headers["Content-Disposition"] = _attachment(artifact.name)
    if wanted is not None:
        first, last = wanted
        headers["Content-Range"] = f"bytes {first}-{last}/{artifact.size}"
        headers["Content-Length"] = str(last - first + 1)
        return StreamingResponse(
            chunks, status_code=206, headers=headers, media_type="application/octet-stream"
        )
    headers["Content-Length"] = str(artifact.size)
    return StreamingResponse(chunks, status_code=200, headers=headers, media_type="application/octet-stream")


@router.post(
    "/{id}/pin",
    response_model=ArtifactOut,
    summary="Pin an artifact: retention keeps it",
    operation_id="pin_artifact",
    responses=responses(404),
)
async def pin_artifact(request: Request, session: SessionDep, actor: Operator, ident: Ident) -> ArtifactOut:
    artifact = await artifacts.set_pinned(session=session, actor=actor, ident=ident, pinned=True)
    await session.commit()
    return render.artifact(artifact, api_base(request))


@router.delete(
    "/{id}/pin",
    response_model=ArtifactOut,
    summary="Unpin an artifact",
    operation_id="unpin_artifact",
    responses=responses(404),
)
async def unpin_artifact(request: Request, session: SessionDep, actor: Operator, ident: Ident) -> ArtifactOut:
    artifact = await artifacts.set_pinned(session=session, actor=actor, ident=ident, pinned=False)
    await session.commit()
    return render.artifact(artifact, api_base(request))
