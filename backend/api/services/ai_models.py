"""Model manifests and per-epoch inference revenue, read from the mirror."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session
from web3 import Web3

from backend.api.mirror import as_int, json_list, rows, table_exists
from cairn.core.errors import NotFoundError
from indexer.views import payments_per_model_epoch

MANIFESTS = "ev_model_manifest_registered"


def get_model(session: Session, *, model_id: str) -> dict[str, Any]:
    """The latest manifest (highest version) of a model, plus the versions seen."""
    found = (
        rows(
            session,
            f"SELECT * FROM {MANIFESTS} WHERE model_id = :m "
            "ORDER BY version DESC, block_number DESC, log_index DESC",
            {"m": model_id},
        )
        if table_exists(session, MANIFESTS)
        else []
    )
    if not found:
        raise NotFoundError(f"no manifest registered for model {model_id}", model_id=model_id)
    latest = found[0]
    dataset_ids = [str(d).lower() for d in json_list(latest["dataset_ids"])]
    weights = [as_int(w) for w in json_list(latest["weights"])]
    return {
        "model_id": model_id,
        "version": as_int(latest["version"]),
        "trainer": Web3.to_checksum_address(latest["trainer"]),
        "datasets": [{"dataset_id": d, "weight": w} for d, w in zip(dataset_ids, weights, strict=False)],
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
