"""The relayer's daily gas budget and its pending owner nonces, in the database, so that every API process
and every restart share them (`relay_budget`, `relay_charge`, `relay_denied` in backend.models).

- A relay *reserves* its transaction's gas limit in the database transaction that stores the outbox row
  (nothing is broadcast before that commit): `reserve()` adds it to the day's `reserved_gas` of the global row
  and of the owner's row with one conditional UPDATE each (`reserved + spent + gas <= limit`), which the
  database applies atomically (a row lock on PostgreSQL, the write lock on SQLite), and inserts its
  `relay_charge` with `pending_nonce` = the owner nonce (`uq_relay_charge_pending_nonce`: one pending relay
  per owner nonce).
- When the outbox has settled the row, `finish()` moves the reservation to `spent_gas` (the receipt's
  gasUsed; 0 when nothing of it was mined) and clears `pending_nonce`. The state change `reserved ->
  settled|released` is conditional, so one process settles each charge once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, and_, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from backend.models import metadata
from backend.outbox import PENDING
from backend.outbox import store as outbox_store

BUDGET = metadata.tables["relay_budget"]
CHARGE = metadata.tables["relay_charge"]
DENIED = metadata.tables["relay_denied"]
RELAY = metadata.tables["relay_record"]
GLOBAL = "*"
RESERVED, SETTLED, RELEASED = "reserved", "settled", "released"
DAY = 86_400


def day_of(t: float) -> int:
    return int(t) // DAY


def until_next_day(t: float) -> int:
    return DAY - int(t) % DAY


class BudgetFull(Exception):
    """Raised inside the storing transaction: the reservation does not fit `scope` (GLOBAL or an owner)."""

    def __init__(self, scope: str, limit: int) -> None:
        super().__init__(scope)
        self.scope = scope
        self.limit = limit


class NonceTaken(Exception):
    """Raised inside the storing transaction: a relay with this owner nonce is pending."""

    def __init__(self, relay_id: str) -> None:
        super().__init__(relay_id)
        self.relay_id = relay_id


@dataclass(frozen=True)
class Ready:
    """A reserved charge whose outbox row is settled (or gone: its first broadcast was refused)."""

    id: int
    owner: str
    reserved_gas: int
    status: str | None  # the outbox row's status; None: the row was discarded
    mined_hash: str | None
    owner_is_contract: bool | None = None  # as recorded with the relay (None: not recorded)


def _insert_ignore(conn: Connection, table: Any, values: dict[str, Any]) -> None:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    conn.execute(dialect.insert(table).values(**values).on_conflict_do_nothing())


class Budget:
    def __init__(self, engine: Engine, chain_id: int, *, daily_gas: int, account_daily_gas: int) -> None:
        self.engine = engine
        self.chain_id = chain_id
        self.daily_gas = daily_gas
        self.account_daily_gas = account_daily_gas

    def limit(self, scope: str) -> int:
        return self.daily_gas if scope == GLOBAL else self.account_daily_gas

    # --- reading ---------------------------------------------------------------------------------------
    def remaining(self, scope: str, *, now: float | None = None) -> int:
        """Gas left today for `scope` (GLOBAL or an owner address), reservations counted as spent."""
        day = day_of(time.time() if now is None else now)
        with self.engine.connect() as conn:
            row = conn.execute(
                select(BUDGET.c.reserved_gas + BUDGET.c.spent_gas).where(
                    BUDGET.c.chain_id == self.chain_id, BUDGET.c.day == day, BUDGET.c.scope == scope.lower()
                )
            ).first()
        return max(self.limit(scope) - (int(row[0]) if row else 0), 0)

    def spent(self, scope: str = GLOBAL, *, day: int | None = None) -> int:
        """Gas actually paid (receipts' gasUsed) on `day` (default today) for `scope`."""
        day = day_of(time.time()) if day is None else day
        with self.engine.connect() as conn:
            got = conn.execute(
                select(BUDGET.c.spent_gas).where(
                    BUDGET.c.chain_id == self.chain_id, BUDGET.c.day == day, BUDGET.c.scope == scope.lower()
                )
            ).scalar()
        return int(got or 0)

    def pending_relay(self, owner: str, nonce: int) -> str | None:
        """The relay id of the pending relay that holds this owner nonce, if any."""
        with self.engine.connect() as conn:
            return self._pending(conn, owner, nonce)

    def _pending(self, conn: Connection, owner: str, nonce: int) -> str | None:
        got = conn.execute(
            select(CHARGE.c.relay_id).where(
                CHARGE.c.chain_id == self.chain_id,
                CHARGE.c.owner == owner.lower(),
                CHARGE.c.pending_nonce == str(nonce),
            )
        ).scalar()
        return None if got is None else str(got)

    def denied(self, owner: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(DENIED).where(DENIED.c.chain_id == self.chain_id, DENIED.c.owner == owner.lower())
            ).first()
        return dict(row._mapping) if row else None

    # --- writing ---------------------------------------------------------------------------------------
    def reserve(
        self,
        conn: Connection,
        *,
        owner: str,
        nonce: int,
        relay_id: str,
        outbox_id: int,
        gas: int,
        claim_nonce: bool = True,
    ) -> None:
        """In the transaction that stores the outbox row: claim the owner nonce (unless `claim_nonce` is
        False: a relay's second transaction) and reserve `gas` today, or raise NonceTaken / BudgetFull (the
        transaction rolls back, nothing is stored or sent)."""
        owner = owner.lower()
        if claim_nonce and (holder := self._pending(conn, owner, nonce)) is not None:
            raise NonceTaken(holder)
        t = time.time()
        day = day_of(t)
        for scope in (GLOBAL, owner):
            limit = self.limit(scope)
            _insert_ignore(
                conn, BUDGET,
                {"chain_id": self.chain_id, "day": day, "scope": scope, "reserved_gas": 0, "spent_gas": 0,
                 "updated_at": int(t)},
            )  # fmt: skip
            moved = conn.execute(
                update(BUDGET)
                .where(
                    BUDGET.c.chain_id == self.chain_id, BUDGET.c.day == day, BUDGET.c.scope == scope,
                    BUDGET.c.reserved_gas + BUDGET.c.spent_gas + gas <= limit,
                )
                .values(reserved_gas=BUDGET.c.reserved_gas + gas, updated_at=int(t))
            )  # fmt: skip
            if moved.rowcount != 1:
                raise BudgetFull(scope, limit)
        conn.execute(
            insert(CHARGE).values(
                chain_id=self.chain_id, relay_id=relay_id, owner=owner, owner_nonce=str(nonce),
                pending_nonce=str(nonce) if claim_nonce else None, outbox_id=outbox_id, day=day,
                reserved_gas=gas, state=RESERVED,
                created_at=int(t),
            )
        )  # fmt: skip

    def ready(self) -> list[Ready]:
        """Reserved charges whose outbox row is no longer pending (or no longer exists)."""
        tx = outbox_store.TX
        query = (
            select(
                CHARGE.c.id,
                CHARGE.c.owner,
                CHARGE.c.reserved_gas,
                tx.c.status,
                tx.c.mined_hash,
                RELAY.c.owner_is_contract,
            )
            .select_from(
                CHARGE.outerjoin(tx, tx.c.id == CHARGE.c.outbox_id).outerjoin(
                    RELAY, RELAY.c.relay_id == CHARGE.c.relay_id
                )
            )
            .where(
                CHARGE.c.chain_id == self.chain_id,
                CHARGE.c.state == RESERVED,
                (tx.c.id.is_(None)) | (tx.c.status != PENDING),
            )
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [
            Ready(int(r[0]), str(r[1]), int(r[2]), r[3], r[4], None if r[5] is None else bool(r[5]))
            for r in rows
        ]

    def finish(self, charge: Ready, *, gas_used: int, wei: int) -> bool:
        """Settle one charge: the reservation becomes `gas_used` spent (0: released). False if another process
        settled it first."""
        t = int(time.time())
        with self.engine.begin() as conn:
            moved = conn.execute(
                update(CHARGE)
                .where(CHARGE.c.id == charge.id, CHARGE.c.state == RESERVED)
                .values(state=SETTLED if gas_used else RELEASED, pending_nonce=None, gas_used=gas_used,
                        wei=str(wei))
            )  # fmt: skip
            if moved.rowcount != 1:
                return False
            day = conn.execute(select(CHARGE.c.day).where(CHARGE.c.id == charge.id)).scalar_one()
            conn.execute(
                update(BUDGET)
                .where(
                    BUDGET.c.chain_id == self.chain_id, BUDGET.c.day == day,
                    BUDGET.c.scope.in_([GLOBAL, charge.owner]),
                )
                .values(
                    reserved_gas=func.max(BUDGET.c.reserved_gas - charge.reserved_gas, 0)
                    if conn.dialect.name == "sqlite"
                    else func.greatest(BUDGET.c.reserved_gas - charge.reserved_gas, 0),
                    spent_gas=BUDGET.c.spent_gas + gas_used,
                    updated_at=t,
                )
            )  # fmt: skip
        return True

    def deny(self, owner: str, *, tx_hash: str, gas_used: int) -> None:
        with self.engine.begin() as conn:
            _insert_ignore(
                conn, DENIED,
                {"chain_id": self.chain_id, "owner": owner.lower(), "tx_hash": tx_hash, "gas_used": gas_used,
                 "created_at": int(time.time())},
            )  # fmt: skip

    def wei_spent(self, *, day: int | None = None) -> int:
        """Wei paid today (or on `day`) by the relayer for settled charges."""
        day = day_of(time.time()) if day is None else day
        with self.engine.connect() as conn:
            values = conn.execute(
                select(CHARGE.c.wei).where(
                    and_(CHARGE.c.chain_id == self.chain_id, CHARGE.c.day == day, CHARGE.c.state == SETTLED)
                )
            ).scalars()
            return sum(int(v or 0) for v in values)
