"""``/metrics``: the control plane's own metrics in the Prometheus text format.

Outside ``/api/v1`` (where scrapers look) but, like every route, behind a viewer token:
Prometheus sends it with ``authorization: {credentials_file: ...}`` in its scrape config.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from controlplane.evaluation.metrics import CONTENT_TYPE, ControlPlaneMetrics

router = APIRouter(tags=["metrics"])


@router.get(
    "/metrics",
    response_class=Response,
    summary="Self-metrics: evaluation duration, source errors, SLO burn per window",
    responses={200: {"content": {CONTENT_TYPE: {}}}},
)
def metrics(request: Request) -> Response:
    registry: ControlPlaneMetrics = request.app.state.metrics
    return Response(content=registry.exposition(), media_type=CONTENT_TYPE)
