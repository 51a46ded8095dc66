"""Emission funding: `fundEmission(e)` through the outbox while epoch e runs, once.

Not a step of the lifecycle's state machine (it happens while the epoch runs, not after it ends). Keys
`fund:<chain>:<distributor>:<e>`, then `#1`, `#2` after a failed try; nothing is sent when the epoch's
emission cap is already minted. `cairn epoch fund` and the keeper call it.
"""

from __future__ import annotations

from dataclasses import dataclass

from backend.outbox import PENDING, OutboxTx
from backend.rewards.context import EpochContext
from cairn.core.errors import ConflictError, EpochEndedError, EpochNotReadyError, InvalidInputError

FUND_TRIES = 3


@dataclass(frozen=True)
class FundResult:
    """What `fund` did: `sent` (this call's, or a killed run's, fundEmission confirmed now), `already`."""

    epoch: int
    status: str
    minted: int
    tx: OutboxTx | None


def emission_left(ctx: EpochContext, epoch: int) -> int:
    """Wei of `epoch`'s emission cap not minted yet."""
    token = ctx._token()
    cap = int(token.functions.emissionCap(epoch).call())
    return cap - int(token.functions.mintedInEpoch(epoch).call())


def fund(ctx: EpochContext, epoch: int | None = None, *, timeout: float = 120.0) -> FundResult:
    """Mint epoch `epoch`'s emission (default: the current epoch) into the pool, once, while it runs.

    Idempotent and crash-safe: what an earlier run left in the outbox for this epoch is settled first;
    nothing is sent when the cap is already minted; a failed try (reverted, replaced) leaves the next
    key (`#1`, `#2`) free, so the outbox never wedges on it."""
    now = ctx._now()
    e = ctx.deployment.epoch.epoch_at(now) if epoch is None else epoch
    if e < 0:
        raise InvalidInputError(f"epoch must be >= 0, not {e}")
    start, end = ctx.deployment.epoch.bounds(e)
    if now < start:
        raise EpochNotReadyError(f"epoch {e} starts in {start - now} s; its emission cannot be minted")
    box = ctx._outbox()
    keys = [ctx._key("fund", e)] + [f"{ctx._key('fund', e)}#{i}" for i in range(1, FUND_TRIES)]
    rows = [r for r in (box.get(k) for k in keys) if r is not None]
    last = rows[-1] if rows else None
    resumed = last is not None and last.status == PENDING  # a killed run's transaction: settle it
    if last is not None and resumed:
        last = box.wait(last.key, timeout=timeout)
    token = ctx._token()
    if emission_left(ctx, e) == 0:
        minted = int(token.functions.mintedInEpoch(e).call())
        sent = resumed and last is not None and last.status == "confirmed"
        return FundResult(e, "sent" if sent else "already", minted, last)
    if ctx._now() >= end:
        raise EpochEndedError(
            f"epoch {e} has ended: emission minted now would fall outside its allocation; not funded"
        )
    if len(rows) >= FUND_TRIES:
        last_hash = last.mined_hash if last is not None else "-"
        raise ConflictError(f"fundEmission({e}) failed {len(rows)} times (last tx {last_hash})")
    data = ctx.distributor.functions.fundEmission(e)._encode_transaction_data()
    queued = box.enqueue(keys[len(rows)], to=ctx.distributor.address, data=data)
    tx = box.wait(queued.key, timeout=timeout)
    minted = int(token.functions.mintedInEpoch(e).call())
    if tx.status != "confirmed" and emission_left(ctx, e) != 0:
        raise ConflictError(f"fundEmission({e}) failed on chain (tx {tx.mined_hash}); run it again")
    return FundResult(e, "sent" if tx.status == "confirmed" else "already", minted, tx)
