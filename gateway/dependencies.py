"""``Depends`` providers: the shared objects the lifespan put on ``app.state``."""

from __future__ import annotations

from fastapi import Request

from .metrics import GatewayMetrics
from .references import ReferenceStore
from .service import VoiceCloneService
from .settings import GatewaySettings


def get_service(request: Request) -> VoiceCloneService:
    return request.app.state.service


def get_references(request: Request) -> ReferenceStore:
    return request.app.state.references


def get_settings(request: Request) -> GatewaySettings:
    return request.app.state.settings


def get_metrics(request: Request) -> GatewayMetrics:
    return request.app.state.metrics
