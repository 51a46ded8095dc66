"""The operator endpoints' steps: the very `EpochLifecycle` methods (and `push_payouts`) `cairn epoch` runs,
on a lifecycle built by the same `build_lifecycle`, one step at a time per API process. Each step is
idempotent (the lifecycle's own guarantee: it looks at the chain and its row first), so a retried call
answers with the same state and sends nothing twice."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine

from backend.api.chain import Chain
from backend.api.settings import ApiSettings
from backend.rewards import epochs as reward_epochs
from backend.rewards.build import build_lifecycle
from backend.rewards.lifecycle import EpochLifecycle, EpochRow
from backend.rewards.payouts import push_payouts
from cairn.core.errors import ConflictError
from cairn.core.policy import load_policy

_LOCK = threading.Lock()  # one lifecycle step at a time in this process (the outbox orders the rest)


def _lifecycle(settings: ApiSettings, chain: Chain, engine: Engine) -> EpochLifecycle:
    return build_lifecycle(
        settings, engine=engine, w3=chain.w3, deployment=chain.deployment,
        policy=load_policy(settings.api_operator_policy), migrate=False,
    )  # fmt: skip


def _state(epoch: int, row: EpochRow) -> dict[str, Any]:
    return {"epoch": epoch, **reward_epochs.state(row)}


def step(name: str, *, settings: ApiSettings, chain: Chain, engine: Engine, epoch: int) -> dict[str, Any]:
    """`close` (= `cairn epoch compute`: close, then compute), `publish` or `finalize`."""
    steps: dict[str, Callable[[EpochLifecycle, int], EpochRow]] = {
        "close": EpochLifecycle.compute,
        "publish": EpochLifecycle.publish,
        "finalize": EpochLifecycle.finalize,
    }
    with _LOCK:
        return _state(epoch, steps[name](_lifecycle(settings, chain, engine), epoch))


def payout(
    *, settings: ApiSettings, chain: Chain, engine: Engine, epoch: int, min_amount: int, batch_size: int
) -> dict[str, Any]:
    """`cairn epoch payout`: claimForBatch for every account of the accepted epoch with something due."""
    with _LOCK:
        eng = _lifecycle(settings, chain, engine)
        report = push_payouts(eng, epoch, min_amount=min_amount, batch_size=batch_size)
        row = eng.require_row(epoch)
    if report.unpaid:
        raise ConflictError(
            f"{len(report.unpaid)} account(s) unpaid after repeated reverts (first {report.unpaid[0]}); "
            "call it again",
            unpaid=report.unpaid,
        )
    out = _state(epoch, row)
    out["payout"] = {
        "paid": report.paid, "paid_amount": str(report.paid_amount), "already_paid": report.already_paid,
        "below_min": report.below_min, "skipped": report.skipped, "unpaid": report.unpaid,
        "batches": [{"tx_hash": t.mined_hash, "status": t.status, "nonce": t.nonce} for t in report.batches],
    }  # fmt: skip
    return out
