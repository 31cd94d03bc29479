"""Operations: ``GET /health`` (gateway + Triton readiness + model versions) and ``GET /metrics`` (Prometheus)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from .. import __version__
from ..dependencies import get_metrics, get_service
from ..errors import STATUS_UNAVAILABLE
from ..metrics import GatewayMetrics
from ..models import HealthResponse
from ..service import VoiceCloneService

router = APIRouter(tags=["operations"])


@router.get(
    "/health",
    response_model=HealthResponse,
    responses={503: {"model": HealthResponse, "description": "Triton or its voice_clone model is not ready"}},
)
async def health(service: Annotated[VoiceCloneService, Depends(get_service)]) -> JSONResponse:
    """200 when a synthesis request would be served now, 503 (same body) otherwise."""
    triton = await service.triton.health()
    available = triton.ready and triton.model_ready
    body = HealthResponse(
        status="ok" if available else "unavailable",
        service_available=available,
        gateway_version=__version__,
        triton=triton,
    )
    return JSONResponse(body.model_dump(), status_code=200 if available else STATUS_UNAVAILABLE)


@router.get("/metrics", response_class=Response)
async def metrics(registry: Annotated[GatewayMetrics, Depends(get_metrics)]) -> Response:
    """Prometheus text format: requests by route and status, latency histogram, audio seconds produced."""
    # Rendering walks every series (a few ms once many routes and statuses were seen): off the event loop.
    return Response(await run_in_threadpool(registry.render), media_type=registry.content_type)
