"""`GET /health` and `GET /metrics`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from backend.api import schemas
from backend.api.deps import ChainDep, EngineDep
from backend.api.metrics import Metrics
from backend.api.schemas import problem_responses
from backend.api.services.health import health as health_service

router = APIRouter(tags=["health"])


@router.get("/health", response_model=schemas.Health, responses=problem_responses(503))
def health(request: Request, chain: ChainDep, engine: EngineDep) -> dict[str, Any]:
    """Chain id and head, indexed block and lag, database kind, contract addresses, version."""
    out = health_service(chain=chain, engine=engine)
    background = request.app.state.indexer
    if background is not None:
        out["indexer"] = {
            "in_process": True,
            "running": background.thread is not None and background.thread.is_alive(),
            "error": None
            if background.error is None
            else f"{type(background.error).__name__}: {background.error}",
        }
    else:
        out["indexer"] = {"in_process": False}
    metrics: Metrics = request.app.state.metrics
    metrics.chain_head.set(out["latest_block"])
    if out["latest_indexed_block"] is not None:
        metrics.indexed.set(out["latest_indexed_block"])
        metrics.lag.set(out["indexer_lag"])
    return out


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request, chain: ChainDep, engine: EngineDep) -> Response:
    """Prometheus text format."""
    m: Metrics = request.app.state.metrics
    try:
        state = health_service(chain=chain, engine=engine)
        m.chain_head.set(state["latest_block"])
        if state["latest_indexed_block"] is not None:
            m.indexed.set(state["latest_indexed_block"])
            m.lag.set(state["indexer_lag"])
    except Exception:  # metrics must render even when the chain is down
        pass
    return m.render()
