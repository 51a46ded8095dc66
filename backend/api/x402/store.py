"""The x402 payments' rows (`x402_payment`, `x402_payer`, `x402_batch` in backend.models).

Every change of a payment's status and the payer's exposure happen in one database transaction, so that
`x402_payer.unsettled` is always the sum of the payer's accepted, served and settling payments, whatever
process is killed when. A payment is recorded `accepted` before it is served; the per-payer row is locked
first (an UPDATE), so two requests of one payer on two API processes cannot both pass the exposure limit.
`accepted` -> `served` once its route produced its whole response (`served`), or -> `void` when the route
failed or the payment stayed accepted past the serve timeout (`void`, `void_stale`: a process killed while
serving); a void payment's exposure is released and the settler, which batches only served ones, never
submits it. The two moves are conditional updates of an accepted row, so exactly one of them wins.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from backend.api.x402.scheme import PaymentRejectedError
from backend.models import metadata

ACCEPTED, SETTLING, SETTLED, FAILED = "accepted", "settling", "settled", "failed"
SERVED = "served"  # accepted, and its route produced its whole response: the only status the settler batches
VOID = "void"  # accepted, then the paid route failed (5xx, raised, or not served in time): never settled
BATCH_PENDING, BATCH_APPLIED, BATCH_RELEASED = "pending", "applied", "released"
PAYMENT = metadata.tables["x402_payment"]
PAYER = metadata.tables["x402_payer"]
BATCH = metadata.tables["x402_batch"]


class BatchRaceError(Exception):
    """Another settler took some of the payments first: the batch (and its outbox row) is not stored."""


@dataclass(frozen=True)
class Exposure:
    unsettled: int
    failed: int
    failed_amount: int


def _now() -> int:
    return int(time.time())


def _ensure_payer(conn: Connection, chain_id: int, payer: str) -> None:
    values = {"chain_id": chain_id, "payer": payer, "unsettled": "0", "failed": 0, "failed_amount": "0",
              "updated_at": _now()}  # fmt: skip
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    conn.execute(dialect.insert(PAYER).values(**values).on_conflict_do_nothing())


def _lock_exposure(conn: Connection, chain_id: int, payer: str) -> Exposure:
    """The payer's row, locked for this transaction (created at zero if new)."""
    _ensure_payer(conn, chain_id, payer)
    where = (PAYER.c.chain_id == chain_id, PAYER.c.payer == payer)
    conn.execute(update(PAYER).where(*where).values(updated_at=_now()))  # the row lock
    row = conn.execute(select(PAYER.c.unsettled, PAYER.c.failed, PAYER.c.failed_amount).where(*where)).one()
    return Exposure(int(row.unsettled), int(row.failed), int(row.failed_amount))


def _add(conn: Connection, chain_id: int, payer: str, unsettled: int, failed: int = 0, failed_amount: int = 0
         ) -> None:  # fmt: skip
    cur = _lock_exposure(conn, chain_id, payer)
    conn.execute(
        update(PAYER)
        .where(PAYER.c.chain_id == chain_id, PAYER.c.payer == payer)
        .values(unsettled=str(cur.unsettled + unsettled), failed=cur.failed + failed,
                failed_amount=str(cur.failed_amount + failed_amount), updated_at=_now())
    )  # fmt: skip


def exposure(engine: Engine, chain_id: int, payer: str) -> Exposure:
    with engine.connect() as conn:
        row = conn.execute(
            select(PAYER.c.unsettled, PAYER.c.failed, PAYER.c.failed_amount).where(
                PAYER.c.chain_id == chain_id, PAYER.c.payer == payer.lower()
            )
        ).first()
    return Exposure(int(row.unsettled), int(row.failed), int(row.failed_amount)) if row else Exposure(0, 0, 0)


def record(
    engine: Engine,
    *,
    chain_id: int,
    scheme: str,
    payer: str,
    nonce: str,
    amount: int,
    model_id: str,
    resource: str,
    authorization: dict[str, Any],
    balance: int,
    limit: int,
) -> int:
    """Record an accepted payment before it is served, if the payer may owe it: no failed settlement,
    unsettled exposure + amount within `limit` and within the payer's `balance`. Returns the payment id;
    raises PaymentRejectedError otherwise (nothing written)."""
    payer = payer.lower()
    try:
        with engine.begin() as conn:
            cur = _lock_exposure(conn, chain_id, payer)
            if cur.failed:
                raise PaymentRejectedError(
                    "payer_has_failed_settlements",
                    f"payer {payer} has {cur.failed} payment(s) that failed to settle ({cur.failed_amount} "
                    "atomic units served and not paid, e.g. a cancelled authorization); refused",
                )
            owed = cur.unsettled + amount
            if owed > limit:
                raise PaymentRejectedError(
                    "exposure_limit",
                    f"payer {payer} has {cur.unsettled} atomic units accepted and not yet settled; this "
                    f"payment would make {owed}, above the limit {limit}: retry once earlier payments are "
                    "settled",
                )
            if owed > balance:
                raise PaymentRejectedError(
                    "invalid_exact_evm_insufficient_balance",
                    f"payer {payer} holds {balance} atomic units, less than the {owed} it would owe with "
                    "this payment",
                )
            t = _now()
            pid = conn.execute(
                insert(PAYMENT)
                .values(chain_id=chain_id, scheme=scheme, payer=payer, nonce=nonce.lower(),
                        amount=str(amount), model_id=model_id.lower(), resource=resource,
                        authorization=json.dumps(authorization),
                        status=ACCEPTED, created_at=t, updated_at=t)
                .returning(PAYMENT.c.id)
            ).scalar_one()  # fmt: skip
            conn.execute(
                update(PAYER)
                .where(PAYER.c.chain_id == chain_id, PAYER.c.payer == payer)
                .values(unsettled=str(owed))
            )
            return int(pid)
    except IntegrityError:
        raise PaymentRejectedError(
            "invalid_exact_evm_nonce_already_used", f"authorization nonce {nonce} of {payer} was already used"
        ) from None


def served(engine: Engine, payment_id: int) -> bool:
    """Mark an accepted payment served (its route produced its whole response): from now on the settler may
    batch it. False when it is not accepted any more (voided first: then it is never charged)."""
    with engine.begin() as conn:
        done = conn.execute(
            update(PAYMENT)
            .where(PAYMENT.c.id == payment_id, PAYMENT.c.status == ACCEPTED)
            .values(status=SERVED, updated_at=_now())
        ).rowcount
    return bool(done)


def void(engine: Engine, payment_id: int, reason: str) -> bool:
    """Mark an accepted (not yet served) payment void: it is never settled and its amount leaves the payer's
    exposure, in one transaction. False when it is not accepted any more (served: then it settles)."""
    with engine.begin() as conn:
        row = conn.execute(
            select(PAYMENT.c.chain_id, PAYMENT.c.payer, PAYMENT.c.amount).where(PAYMENT.c.id == payment_id)
        ).first()
        if row is None:
            return False
        _lock_exposure(conn, row.chain_id, row.payer)  # the payer's row first, as `record` and the settler
        done = conn.execute(
            update(PAYMENT)
            .where(PAYMENT.c.id == payment_id, PAYMENT.c.status == ACCEPTED, PAYMENT.c.batch_id.is_(None))
            .values(status=VOID, reason=reason, updated_at=_now())
        ).rowcount
        if done:
            _add(conn, row.chain_id, row.payer, -int(row.amount))
        return bool(done)


def void_stale(engine: Engine, chain_id: int, older_than_s: int, reason: str = "not_served_in_time") -> int:
    """Void the payments still `accepted` `older_than_s` seconds after they were recorded (their process
    died while serving, or the request outlived the serve timeout). Returns how many were voided."""
    with engine.connect() as conn:
        ids = (
            conn.execute(
                select(PAYMENT.c.id).where(
                    PAYMENT.c.chain_id == chain_id,
                    PAYMENT.c.status == ACCEPTED,
                    PAYMENT.c.created_at < _now() - older_than_s,
                )
            )
            .scalars()
            .all()
        )
    return sum(void(engine, int(pid), reason) for pid in ids)


def unbatched(engine: Engine, chain_id: int, scheme: str, limit: int) -> list[Any]:
    """The oldest served payments not in a batch yet."""
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(PAYMENT)
                .where(PAYMENT.c.chain_id == chain_id, PAYMENT.c.scheme == scheme, PAYMENT.c.status == SERVED)
                .order_by(PAYMENT.c.id)
                .limit(limit)
            )
        )


def claim_batch(conn: Connection, chain_id: int, ids: list[int], outbox_id: int) -> int:
    """In the outbox row's transaction: the batch row, and its payments moved to `settling`."""
    t = _now()
    bid = conn.execute(
        insert(BATCH)
        .values(chain_id=chain_id, outbox_id=outbox_id, size=len(ids), status=BATCH_PENDING, created_at=t,
                updated_at=t)
        .returning(BATCH.c.id)
    ).scalar_one()  # fmt: skip
    moved = conn.execute(
        update(PAYMENT)
        .where(PAYMENT.c.id.in_(ids), PAYMENT.c.status == SERVED, PAYMENT.c.batch_id.is_(None))
        .values(status=SETTLING, batch_id=bid, updated_at=t)
    ).rowcount
    if moved != len(ids):
        raise BatchRaceError(f"{len(ids) - moved} of {len(ids)} payments were batched by another settler")
    return int(bid)


def open_batches(engine: Engine, chain_id: int) -> list[Any]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(BATCH.c.id, BATCH.c.outbox_id)
                .where(BATCH.c.chain_id == chain_id, BATCH.c.status == BATCH_PENDING)
                .order_by(BATCH.c.id)
            )
        )


def apply_outcomes(
    engine: Engine,
    batch_id: int,
    tx_hash: str,
    settled: set[tuple[str, str]],
    skipped: dict[tuple[str, str], str],
) -> None:
    """The receipt's outcome for every payment of the batch, once (a repeat after a crash changes nothing):
    settled with the transaction hash, or failed with the reason (payer, nonce keys are 0x-lowercase)."""
    with engine.begin() as conn:
        done = conn.execute(
            update(BATCH)
            .where(BATCH.c.id == batch_id, BATCH.c.status == BATCH_PENDING)
            .values(status=BATCH_APPLIED, updated_at=_now())
        ).rowcount
        if not done:
            return
        rows = conn.execute(
            select(
                PAYMENT.c.id, PAYMENT.c.chain_id, PAYMENT.c.payer, PAYMENT.c.nonce, PAYMENT.c.amount
            ).where(PAYMENT.c.batch_id == batch_id, PAYMENT.c.status == SETTLING)
        ).all()
        t = _now()
        for r in rows:
            key = (r.payer, r.nonce)
            amount = int(r.amount)
            if key in settled:
                conn.execute(
                    update(PAYMENT)
                    .where(PAYMENT.c.id == r.id)
                    .values(status=SETTLED, tx_hash=tx_hash, updated_at=t)
                )
                _add(conn, r.chain_id, r.payer, -amount)
            else:
                reason = skipped.get(key, "not_in_receipt")
                conn.execute(
                    update(PAYMENT)
                    .where(PAYMENT.c.id == r.id)
                    .values(status=FAILED, tx_hash=tx_hash, reason=reason, updated_at=t)
                )
                _add(conn, r.chain_id, r.payer, -amount, failed=1, failed_amount=amount)


def release_batch(engine: Engine, batch_id: int) -> None:
    """The batch's transaction did not land (reverted or replaced): its payments, served, wait for the next
    batch."""
    with engine.begin() as conn:
        done = conn.execute(
            update(BATCH)
            .where(BATCH.c.id == batch_id, BATCH.c.status == BATCH_PENDING)
            .values(status=BATCH_RELEASED, updated_at=_now())
        ).rowcount
        if done:
            conn.execute(
                update(PAYMENT)
                .where(PAYMENT.c.batch_id == batch_id, PAYMENT.c.status == SETTLING)
                .values(status=SERVED, batch_id=None, updated_at=_now())
            )


def payments(
    engine: Engine, chain_id: int, *, payer: str | None, status: str | None, limit: int, after: int = 0
) -> list[dict[str, Any]]:
    """Payments, oldest first, for the API (`GET /v1/payments`)."""
    query = select(PAYMENT).where(PAYMENT.c.chain_id == chain_id, PAYMENT.c.id > after)
    if payer:
        query = query.where(PAYMENT.c.payer == payer.lower())
    if status:
        query = query.where(PAYMENT.c.status == status)
    with engine.connect() as conn:
        rows = conn.execute(query.order_by(PAYMENT.c.id).limit(limit)).all()
    return [
        {"id": r.id, "scheme": r.scheme, "payer": r.payer, "nonce": r.nonce, "amount": r.amount,
         "model_id": r.model_id, "resource": r.resource, "status": r.status, "tx_hash": r.tx_hash,
         "reason": r.reason, "created_at": r.created_at, "updated_at": r.updated_at}
        for r in rows
    ]  # fmt: skip
