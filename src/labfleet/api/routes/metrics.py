"""``/metrics``: the lab in the Prometheus text format, for a viewer token (bearer)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST

from labfleet.api import metrics_text
from labfleet.api.deps import SessionDep, Viewer
from labfleet.api.problems import responses
from labfleet.services.metrics import service as metrics

router = APIRouter(tags=["metrics"], responses=responses(401, 403, 422))


@router.get(
    "/metrics",
    summary="Metrics in the Prometheus text format",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "The exposition."}},
)
async def get_metrics(session: SessionDep, _: Viewer) -> Response:
    snapshot = await metrics.snapshot(session)
    return Response(metrics_text.render(snapshot), media_type=CONTENT_TYPE_LATEST)
