"""Errors as RFC 9457 problem details, mapped from labfleet's error tree in one table."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from labfleet import errors

MEDIA_TYPE = "application/problem+json"

# The one place where an error becomes an HTTP status. Most specific first.
STATUS_OF: list[tuple[type[errors.LabfleetError], int]] = [
    (errors.Gone, 410),
    (errors.NotFound, 404),
    (errors.Conflict, 409),
    (errors.Invalid, 422),
    (errors.Unauthenticated, 401),
    (errors.Forbidden, 403),
    # The server's own stored bytes are damaged: a server fault, not the client's (4xx), not an
    # upstream's (502), and not transient (503 would invite a retry that cannot help).
    (errors.Corrupted, 500),
    (errors.Busy, 503),
    (errors.Timeout, 504),
    (errors.DeviceError, 502),
]


class FieldError(BaseModel):
    field: str = Field(description="Dotted path of the offending field, e.g. ssh.port.")
    reason: str


class Problem(BaseModel):
    """An error response (RFC 9457)."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    instance: str | None = None
    field: str | None = Field(default=None, description="The field at fault, when there is one.")
    errors: list[FieldError] = Field(default_factory=list)
    alternatives: list[dict[str, Any]] | None = Field(
        default=None,
        description="When nothing can take the request now: what else could, and what each lacks.",
    )
    decision: dict[str, Any] | None = Field(
        default=None, description="How the choice was made: candidates, exclusions, scores."
    )


def problem_response(
    request: Request,
    status: int,
    detail: str,
    *,
    field: str | None = None,
    errors_: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
    alternatives: list[dict[str, Any]] | None = None,
    decision: dict[str, Any] | None = None,
) -> JSONResponse:
    body = Problem(
        type=f"urn:labfleet:problem:{HTTPStatus(status).phrase.lower().replace(' ', '-')}",
        title=HTTPStatus(status).phrase,
        status=status,
        detail=detail,
        instance=request.url.path,
        field=field,
        errors=errors_ or [],
        alternatives=alternatives,
        decision=decision,
    )
    return JSONResponse(
        body.model_dump(exclude_none=True), status_code=status, media_type=MEDIA_TYPE, headers=headers
    )


def _field_path(loc: tuple[Any, ...]) -> str:
    # Drop the request part ("body", "query", ...) so the path names the field as sent.
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    return ".".join(parts) or "body"


async def _labfleet_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, errors.LabfleetError)
    status = next((code for kind, code in STATUS_OF if isinstance(exc, kind)), 500)
    headers: dict[str, str] = {}
    if isinstance(exc, errors.Unauthenticated):
        headers["WWW-Authenticate"] = "Bearer"
    if isinstance(exc, errors.Busy):
        headers["Retry-After"] = str(max(1, round(exc.retry_after)))
    field_errors = [FieldError(field=exc.field, reason=exc.message)] if exc.field else []
    unavailable = exc if isinstance(exc, errors.Unavailable) else None
    return problem_response(
        request,
        status,
        exc.message,
        field=exc.field,
        errors_=field_errors,
        headers=headers,
        alternatives=unavailable.alternatives if unavailable else None,
        decision=unavailable.decision if unavailable else None,
    )


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    field_errors = []
    for err in exc.errors():
        reason = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        field_errors.append(FieldError(field=_field_path(tuple(err.get("loc", ()))), reason=reason))
    first = field_errors[0] if field_errors else FieldError(field="body", reason="invalid")
    more = f" (and {len(field_errors) - 1} more)" if len(field_errors) > 1 else ""
    return problem_response(
        request, 422, f"{first.field}: {first.reason}{more}", field=first.field, errors_=field_errors
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return problem_response(request, exc.status_code, str(exc.detail), headers=dict(exc.headers or {}))


def install(app: FastAPI) -> None:
    app.add_exception_handler(errors.LabfleetError, _labfleet_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the problem responses an operation can return."""
    return {
        code: {
            "description": HTTPStatus(code).phrase,
            "content": {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for code in codes
    }


def add_schemas(spec: dict[str, Any]) -> dict[str, Any]:
    """Put ``Problem`` in the spec's components, where ``responses()`` points."""
    schema = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    components = spec.setdefault("components", {}).setdefault("schemas", {})
    components.update(schema.pop("$defs", {}))
    components["Problem"] = schema
    # FastAPI's own validation-error schemas are replaced by Problem everywhere.
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    return spec
