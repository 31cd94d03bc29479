"""The FastAPI application: routers, error handlers, middleware, and the shared objects of the lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from gsv_triton.settings import Settings

from . import __version__
from .auth import ApiKeyMiddleware
from .disconnect import CancelOnDisconnect
from .errors import install_error_handlers
from .metrics import GatewayMetrics
from .middleware import RequestContextMiddleware
from .models import SupervisorHealth
from .page import PAGE_PATH, PageFiles, page_paths
from .references import ReferenceStore, load_default_reference
from .routes.api_v2 import router as api_v2_router
from .routes.convert import router as convert_router
from .routes.models import router as models_router
from .routes.openai import router as openai_router
from .routes.ops import router as ops_router
from .routes.page import router as page_router
from .routes.stream import router as stream_router
from .routes.upstream import router as upstream_router
from .routes.voice_clone import router as voice_clone_router
from .routes.voices import router as voices_router
from .service import VoiceCloneService
from .triton import TritonVoiceClone
from .voices import VoiceStore

# Room in a request body beyond the upload itself: multipart headers and boundaries, plus the two texts at
# up to 4 UTF-8 bytes per character (bounded by max_text_chars).
BODY_MARGIN_BYTES = 64 * 1024
UTF8_MAX_BYTES = 4
TEXT_FIELDS = 2  # text and prompt_text


def max_body_bytes(settings: Settings) -> int:
    """The largest request body the gateway reads: the upload limit plus room for the form fields."""
    return settings.max_upload_bytes + BODY_MARGIN_BYTES + TEXT_FIELDS * UTF8_MAX_BYTES * settings.max_text_chars


def create_app(
    settings: Settings | None = None, supervisor_status: Callable[[], SupervisorHealth] | None = None
) -> FastAPI:
    """The gateway app; ``settings`` default to the ``GSV_*`` environment. ``supervisor_status`` (``gsv-triton
    up``): what the supervisor of the Triton beside us is doing, reported by ``/health``."""
    settings = settings or Settings()
    metrics = GatewayMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # One Triton client per process, created inside the running event loop (grpc.aio needs it).
        triton = TritonVoiceClone(
            settings.triton_url,
            settings.model_name,
            settings.request_timeout_s,
            settings.health_timeout_s,
            http_url=settings.triton_http_url,
        )
        app.state.service = VoiceCloneService(triton, settings, metrics)
        app.state.references = ReferenceStore(await run_in_threadpool(load_default_reference, settings))
        app.state.voices = await run_in_threadpool(VoiceStore, settings.voice_dir)
        try:
            yield
        finally:
            await triton.close()

    app = FastAPI(
        title="gsv-triton gateway",
        version=__version__,
        summary="GPT-SoVITS voice cloning on Triton: the /v1/voice-clone contract and upstream api.py routes",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.supervisor_status = supervisor_status
    app.state.metrics = metrics
    install_error_handlers(app)
    routers = (
        voice_clone_router,
        stream_router,
        voices_router,
        convert_router,
        openai_router,
        models_router,
        upstream_router,
        api_v2_router,
        ops_router,
        page_router,
    )
    for router in routers:
        app.include_router(router)
    # The web page's files (after the routers, so /ui/config.json is the page router's).
    app.mount(PAGE_PATH, PageFiles(), name="page")
    route_paths = frozenset(route.path for router in routers for route in router.routes if hasattr(route, "path"))
    route_paths |= page_paths()
    # Innermost: a client that goes away cancels its handler (and so its Triton call).
    app.add_middleware(CancelOnDisconnect)
    # Added before RequestContextMiddleware, so it runs inside it: a 401 still gets its request id, log line and
    # metrics.
    app.add_middleware(ApiKeyMiddleware, keys=settings.api_key_set)
    app.add_middleware(
        RequestContextMiddleware, metrics=metrics, max_body_bytes=max_body_bytes(settings), route_paths=route_paths
    )
    return app
