"""The outbox's rows (`outbox_tx`, `outbox_attempt` in backend.models): reading them, and reserving a nonce.

Nonces are shared per (chain, sender) by every process on the database: a new row takes the smallest nonce
at or above the node's pending count that no stored row of that sender holds, in the same database
transaction that inserts it. The unique constraint `uq_outbox_tx_nonce` decides between two processes that
picked the same one (the loser retries with a fresh view); on PostgreSQL a transaction-scoped advisory lock
per (chain, sender) serializes the choice, so the retry is rare there.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select, text, update

from backend.models import metadata

PENDING, CONFIRMED, FAILED = "pending", "confirmed", "failed"
TX = metadata.tables["outbox_tx"]
ATTEMPT = metadata.tables["outbox_attempt"]


@dataclass(frozen=True)
class OutboxTx:
    id: int
    key: str
    nonce: int
    status: str
    mined_hash: str | None
    block_number: int | None
    to_address: str | None = None
    tx_hash: str | None = None  # the mined attempt's hash, else the latest attempt's

    @property
    def replaced(self) -> bool:
        """Failed without a receipt: its nonce was used by another transaction (nothing of ours mined)."""
        return self.status == FAILED and self.mined_hash is None


def now() -> int:
    return int(time.time())


_COLUMNS = (TX.c.id, TX.c.key, TX.c.nonce, TX.c.status, TX.c.mined_hash, TX.c.block_number, TX.c.to_address)


def current_hash() -> Any:
    """SQL for a row's current transaction hash: the mined attempt's, else the latest attempt's."""
    return func.coalesce(TX.c.mined_hash, _latest_attempt())


def _latest_attempt() -> Any:
    return (
        select(ATTEMPT.c.tx_hash)
        .where(ATTEMPT.c.outbox_id == TX.c.id)
        .order_by(ATTEMPT.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )


def _one(engine: Engine, where: Any) -> OutboxTx | None:
    query = select(*_COLUMNS, current_hash()).where(where)
    with engine.connect() as conn:
        r = conn.execute(query).first()
    return OutboxTx(*r) if r else None


def by_key(engine: Engine, key: str) -> OutboxTx | None:
    return _one(engine, TX.c.key == key)


def by_id(engine: Engine, oid: int) -> OutboxTx | None:
    return _one(engine, TX.c.id == oid)


def by_hash(engine: Engine, tx_hash: str) -> OutboxTx | None:
    """The row one of whose attempts (any fee bump) has this hash."""
    owner = select(ATTEMPT.c.outbox_id).where(ATTEMPT.c.tx_hash == tx_hash.lower()).scalar_subquery()
    return _one(engine, TX.c.id == owner)


def attempts(engine: Engine, oid: int) -> list[Any]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(ATTEMPT.c.tx_hash, ATTEMPT.c.raw_tx, ATTEMPT.c.max_fee, ATTEMPT.c.priority_fee,
                       ATTEMPT.c.created_at)
                .where(ATTEMPT.c.outbox_id == oid)
                .order_by(ATTEMPT.c.id)
            )
        )  # fmt: skip


def pending_rows(engine: Engine, chain_id: int, sender: str) -> list[Any]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(TX.c.id, TX.c.nonce, TX.c.to_address, TX.c.data, TX.c.value, TX.c.gas)
                .where(TX.c.chain_id == chain_id, TX.c.sender == sender, TX.c.status == PENDING)
                .order_by(TX.c.nonce)
            )
        )


def _lock_sender(conn: Connection, chain_id: int, sender: str) -> None:
    if conn.dialect.name == "postgresql":
        digest = hashlib.sha256(f"cairn-outbox:{chain_id}:{sender}".encode()).digest()
        conn.execute(
            text("SELECT pg_advisory_xact_lock(:k)"), {"k": int.from_bytes(digest[:8], "big", signed=True)}
        )


def free_nonce(conn: Connection, chain_id: int, sender: str, chain_pending: int) -> int:
    """The smallest nonce >= the node's pending count that no stored row of this sender holds.

    Rows at or above the pending count are ours and not (yet) in the node's pool: a dropped one keeps its
    nonce (it is re-broadcast or bumped), a discarded one (refused at its first broadcast) leaves a gap that
    the next row fills, so nothing after it stalls."""
    held = conn.execute(
        select(TX.c.nonce)
        .where(TX.c.chain_id == chain_id, TX.c.sender == sender, TX.c.nonce >= chain_pending)
        .order_by(TX.c.nonce)
    ).scalars()
    nonce = chain_pending
    for n in held:
        if int(n) != nonce:
            break
        nonce += 1
    return nonce


def reserve(
    engine: Engine,
    *,
    key: str,
    chain_id: int,
    sender: str,
    chain_pending: int,
    fields: dict[str, Any],
    sign: Callable[[int], tuple[str, str]],
    fees: tuple[int, int],
    with_row: Callable[[Connection, int], None] | None = None,
) -> bool:
    """In one transaction: pick a free nonce, sign with it (`sign(nonce) -> (hash, raw)`), insert the row and
    its first attempt, and run `with_row(conn, id)` (e.g. the relay record that references it).

    False if `key` exists already (nothing written). Raises IntegrityError when another process took the
    nonce first; the caller retries."""
    with engine.begin() as conn:
        _lock_sender(conn, chain_id, sender)
        if conn.execute(select(TX.c.id).where(TX.c.key == key)).first() is not None:
            return False
        nonce = free_nonce(conn, chain_id, sender, chain_pending)
        tx_hash, raw = sign(nonce)
        t = now()
        oid = conn.execute(
            insert(TX)
            .values(key=key, chain_id=chain_id, sender=sender, nonce=nonce, status=PENDING, created_at=t,
                    updated_at=t, **fields)
            .returning(TX.c.id)
        ).scalar_one()  # fmt: skip
        add_attempt(conn, oid, tx_hash, raw, fees)
        if with_row is not None:
            with_row(conn, int(oid))
    return True


def add_attempt(conn: Connection, oid: int, tx_hash: str, raw: str, fees: tuple[int, int]) -> None:
    conn.execute(
        insert(ATTEMPT).values(outbox_id=oid, tx_hash=tx_hash, raw_tx=raw, max_fee=str(fees[0]),
                               priority_fee=str(fees[1]), created_at=now())
    )  # fmt: skip


def settle(engine: Engine, oid: int, *, status: str, mined_hash: str | None, block: int | None) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(TX)
            .where(TX.c.id == oid, TX.c.status == PENDING)
            .values(status=status, mined_hash=mined_hash, block_number=block, updated_at=now())
        )


def discard(conn: Connection, oid: int) -> None:
    """Forget a row that never left (its first broadcast was refused): its nonce is free again."""
    conn.execute(ATTEMPT.delete().where(ATTEMPT.c.outbox_id == oid))
    conn.execute(TX.delete().where(TX.c.id == oid, TX.c.status == PENDING))
