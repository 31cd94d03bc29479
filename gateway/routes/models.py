"""Model sets (several fine-tunes in one Triton, gateway/model_sets.py): ``GET /v1/models`` lists them with
their state, ``POST /v1/models/{name}/load`` and ``/unload`` load or unload one now.

``GET /v1/models`` keeps OpenAI's shape (``{"object": "list", "data": [...]}``): OpenAI's model ids first (they
speak with the default set, so OpenAI code runs unchanged), then one card per model set, whose ``id`` is the
set's name (accepted as ``model`` by ``/v1/audio/speech``) and whose ``model_set`` tells its state.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from ..dependencies import get_service
from ..models import ErrorResponse, ModelCard, ModelList, ModelSetInfo
from ..service import VoiceCloneService
from .openai import MODEL_IDS

router = APIRouter(tags=["model sets"])

ERRORS = {status: {"model": ErrorResponse} for status in (400, 404, 409, 503)}


async def _info(service: VoiceCloneService, name: str) -> ModelSetInfo:
    return next(ModelSetInfo(**s) for s in await service.model_sets.describe() if s["name"] == name)


@router.get("/v1/models", response_model=ModelList, responses={503: {"model": ErrorResponse}})
async def list_models(service: Annotated[VoiceCloneService, Depends(get_service)]) -> ModelList:
    """OpenAI's model ids (the default set) and every model set of the served repository with its state."""
    sets = [ModelCard(id=s["name"], model_set=ModelSetInfo(**s)) for s in await service.model_sets.describe()]
    return ModelList(data=[ModelCard(id=m) for m in MODEL_IDS] + sets)


@router.post("/v1/models/{name}/load", response_model=ModelSetInfo, responses=ERRORS)
async def load_model_set(name: str, service: Annotated[VoiceCloneService, Depends(get_service)]) -> ModelSetInfo:
    """Load the set now (a no-op when loaded); unloads the least recently used idle set beyond the cap."""
    entry = await service.model_sets.load(name)
    return await _info(service, entry.name)


@router.post("/v1/models/{name}/unload", response_model=ModelSetInfo, responses=ERRORS)
async def unload_model_set(name: str, service: Annotated[VoiceCloneService, Depends(get_service)]) -> ModelSetInfo:
    """Unload the set's networks from Triton (409 while it has requests in flight); its next request loads it."""
    entry = await service.model_sets.unload(name)
    return await _info(service, entry.name)
