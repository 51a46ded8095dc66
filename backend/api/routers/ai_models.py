"""Models and payments: latest training manifest, inference revenue per epoch."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from backend.api import schemas
from backend.api.deps import InferenceDep, SessionDep
from backend.api.schemas import READ, problem_responses
from backend.api.schemas_openai import ModelCard
from backend.api.services import ai_models
from backend.api.validation import EpochPath, parse_bytes32, parse_epoch

router = APIRouter(prefix="/v1", tags=["models"])


@router.get(
    "/models/{model_id}", response_model=schemas.Model | ModelCard, responses=problem_responses(*READ)
)
def get_model(model_id: str, session: SessionDep, inference: InferenceDep) -> dict[str, Any]:
    """A model id (`0x` + 32 bytes hex): the model's latest manifest (trainer, datasets and their weights).
    A served model's name: OpenAI's model object, as in `GET /v1/models` (what `models.retrieve` reads)."""
    if not model_id.startswith("0x"):
        return inference.card(inference.resolve(model_id))
    return ai_models.get_model(session, model_id=parse_bytes32(model_id, field="model_id"))


@router.get("/epochs/{epoch}/revenue", response_model=schemas.Revenue, responses=problem_responses(*READ))
def epoch_revenue(epoch: EpochPath, session: SessionDep) -> dict[str, Any]:
    """Payments settled in the epoch, per model (gross, fee, net, requests)."""
    return ai_models.epoch_revenue(session, epoch=parse_epoch(epoch))
