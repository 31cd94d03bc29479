"""Operations: ``GET /health`` (gateway + Triton readiness + model versions) and ``GET /metrics`` (Prometheus)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from .. import __version__
from ..dependencies import get_metrics, get_service
from ..errors import STATUS_UNAVAILABLE
from ..metrics import GatewayMetrics
from ..models import HealthResponse
from ..service import VoiceCloneService

router = APIRouter(tags=["operations"])
NOT_SERVING = ("restarting", "failed", "stopped")  # supervisor states in which Triton is not there


@router.get(
    "/health",
    response_model=HealthResponse,
    responses={503: {"model": HealthResponse, "description": "degraded or unavailable (see status)"}},
)
async def health(request: Request, service: Annotated[VoiceCloneService, Depends(get_service)]) -> JSONResponse:
    """200 when synthesis requests are served now; 503 (same body) when Triton is not ready ("unavailable") or is
    replacing a model whose stub died ("degraded": some requests fail until it is back)."""
    triton = await service.triton.health()
    supervisor = request.app.state.supervisor_status() if request.app.state.supervisor_status else None
    dead_stubs = service.triton.dead_stub_failures()
    if not (triton.ready and triton.model_ready) or (supervisor and supervisor.state in NOT_SERVING):
        status = "unavailable"
    elif dead_stubs or (supervisor and supervisor.state != "ok"):
        status = "degraded"
    else:
        status = "ok"
    body = HealthResponse(
        status=status,
        service_available=status == "ok",
        gateway_version=__version__,
        triton=triton,
        supervisor=supervisor,
        recent_failures=dead_stubs,
    )
    return JSONResponse(body.model_dump(), status_code=200 if status == "ok" else STATUS_UNAVAILABLE)


@router.get("/metrics", response_class=Response)
async def metrics(registry: Annotated[GatewayMetrics, Depends(get_metrics)]) -> Response:
    """Prometheus text format: requests by route and status, latency histogram, audio seconds produced."""
    # Rendering walks every series (a few ms once many routes and statuses were seen): off the event loop.
    return Response(await run_in_threadpool(registry.render), media_type=registry.content_type)
