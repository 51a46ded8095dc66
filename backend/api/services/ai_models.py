"""Model manifests and per-epoch inference revenue, read from the mirror."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session
from web3 import Web3

from backend.api.mirror import as_int, rows, table_exists
from backend.rewards.allocation import latest_manifest_rows, manifest_entries
from cairn.core.errors import NotFoundError
from indexer.views import payments_per_model_epoch

MANIFESTS = "ev_model_manifest_registered"


def get_model(session: Session, *, model_id: str) -> dict[str, Any]:
    """The latest manifest (highest version) of a model, plus the versions seen."""
    found = (
        rows(
            session,
            f"SELECT * FROM {MANIFESTS} WHERE model_id = :m ORDER BY version, block_number, log_index",
            {"m": model_id},
        )
        if table_exists(session, MANIFESTS)
        else []
    )
    if not found:
        raise NotFoundError(f"no manifest registered for model {model_id}", model_id=model_id)
    latest = latest_manifest_rows(found)[model_id]
    return {
        "model_id": model_id,
        "version": as_int(latest["version"]),
        "trainer": Web3.to_checksum_address(latest["trainer"]),
        "datasets": [{"dataset_id": d, "weight": w} for d, w in manifest_entries(latest)],
        "block_number": as_int(latest["block_number"]),
        "block_time": as_int(latest["block_time"]),
        "tx_hash": latest["tx_hash"],
        "versions": sorted({as_int(r["version"]) for r in found}),
    }


def epoch_revenue(session: Session, *, epoch: int) -> dict[str, Any]:
    """Payments settled in `epoch`, per model: gross amount, protocol fee, net, requests, settlements.

    Exact integer sums from the indexer's `payments_per_model_epoch` (SQLite stores uint256 as text)."""
    totals = (
        payments_per_model_epoch(session.connection(), epoch) if table_exists(session, "v_payments") else []
    )
    models = [
        {
            "model_id": t.model_id,
            "amount": str(t.amount),
            "fee": str(t.fee),
            "net": str(t.amount - t.fee),
            "requests": t.requests,
            "settlements": t.payments,
        }
        for t in totals
    ]
    total = sum(t.amount for t in totals)
    fees = sum(t.fee for t in totals)
    return {
        "epoch": epoch,
        "models": models,
        "total_amount": str(total),
        "total_fee": str(fees),
        "total_net": str(total - fees),
    }
