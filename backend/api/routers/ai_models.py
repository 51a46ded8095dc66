"""Models and payments: latest training manifest, inference revenue per epoch."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from backend.api import schemas
from backend.api.deps import SessionDep
from backend.api.schemas import READ, problem_responses
from backend.api.services import ai_models
from backend.api.validation import EpochPath, parse_bytes32, parse_epoch

router = APIRouter(prefix="/v1", tags=["models"])


@router.get("/models/{model_id}", response_model=schemas.Model, responses=problem_responses(*READ))
def get_model(model_id: str, session: SessionDep) -> dict[str, Any]:
    """The model's latest manifest: trainer, datasets and their weights."""
    return ai_models.get_model(session, model_id=parse_bytes32(model_id, field="model_id"))


@router.get("/epochs/{epoch}/revenue", response_model=schemas.Revenue, responses=problem_responses(*READ))
def epoch_revenue(epoch: EpochPath, session: SessionDep) -> dict[str, Any]:
    """Payments settled in the epoch, per model (gross, fee, net, requests)."""
    return ai_models.epoch_revenue(session, epoch=parse_epoch(epoch))
