"""``Depends`` providers: the shared objects the lifespan put on ``app.state``.

They are ``async def`` on purpose: FastAPI runs a plain ``def`` dependency in a worker thread, and that hop
per dependency cost more CPU than anything else the gateway does per request (py-spy, issue 5).
"""

from __future__ import annotations

from fastapi import Request

from gsv_triton.settings import Settings

from .metrics import GatewayMetrics
from .references import ReferenceStore
from .service import VoiceCloneService
from .voices import VoiceStore


async def get_service(request: Request) -> VoiceCloneService:
    return request.app.state.service


async def get_references(request: Request) -> ReferenceStore:
    return request.app.state.references


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_metrics(request: Request) -> GatewayMetrics:
    return request.app.state.metrics


async def get_voices(request: Request) -> VoiceStore:
    return request.app.state.voices
