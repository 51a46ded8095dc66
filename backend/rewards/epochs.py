"""The one reader and writer of `reward_epoch` (the model `backend.models.RewardEpoch`).

The lifecycle writes the rows (close inserts, compute / publish / finalize update), payouts read them through
the lifecycle, `cairn epoch status` and the API read them here too: nobody else holds SQL for this table.
Functions take a SQLAlchemy `Connection` (an API session gives its own with `session.connection()`) and
return detached `RewardEpoch` instances.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Connection, RowMapping, Table, exists, insert, literal, select, update

from backend.models import RewardEpoch

CLOSED, COMPUTED, PROPOSED, ACCEPTED = "closed", "computed", "proposed", "accepted"
ORDER = {CLOSED: 0, COMPUTED: 1, PROPOSED: 2, ACCEPTED: 3}

# The columns the API shows as an epoch's `engine` state, in this order.
STATE_FIELDS = (
    "status", "end_block", "policy_hash", "root", "epoch_total", "total_cumulative", "leaf_count",
    "allocation_file", "uri", "valid_at",
)  # fmt: skip

TABLE: Table = RewardEpoch.__table__  # type: ignore[attr-defined]
_WRITABLE = frozenset(TABLE.c.keys()) - {"chain_id", "epoch", "updated_at"}


def _model(m: RowMapping) -> RewardEpoch:
    return RewardEpoch(**m)


def get(conn: Connection, *, chain_id: int, epoch: int) -> RewardEpoch | None:
    """The row of (chain, epoch), or None."""
    found = (
        conn.execute(select(TABLE).where(TABLE.c.chain_id == chain_id, TABLE.c.epoch == epoch))
        .mappings()
        .first()
    )
    return None if found is None else _model(found)


def list_rows(conn: Connection, *, chain_id: int | None = None) -> list[RewardEpoch]:
    """Every row (of one chain, or of all), by chain and epoch."""
    stmt = select(TABLE).order_by(TABLE.c.chain_id, TABLE.c.epoch)
    if chain_id is not None:
        stmt = stmt.where(TABLE.c.chain_id == chain_id)
    return [_model(m) for m in conn.execute(stmt).mappings()]


def insert_closed(conn: Connection, *, chain_id: int, epoch: int, end_block: int, policy_hash: str) -> None:
    """Record a closed epoch; an existing row of (chain, epoch) is kept as it is (whatever its status)."""
    values = {
        "chain_id": chain_id, "epoch": epoch, "status": CLOSED, "end_block": end_block,
        "policy_hash": policy_hash, "updated_at": int(time.time()),
    }  # fmt: skip
    missing = ~exists().where(TABLE.c.chain_id == chain_id, TABLE.c.epoch == epoch)
    source = select(*(literal(v, TABLE.c[k].type).label(k) for k, v in values.items())).where(missing)
    conn.execute(insert(TABLE).from_select(list(values), source))


def update_row(conn: Connection, *, chain_id: int, epoch: int, **fields: Any) -> None:
    """Set `fields` (column names of `reward_epoch`) on the row of (chain, epoch), and its `updated_at`."""
    unknown = set(fields) - _WRITABLE
    if unknown:
        raise ValueError(f"not writable columns of reward_epoch: {sorted(unknown)}")
    conn.execute(
        update(TABLE)
        .where(TABLE.c.chain_id == chain_id, TABLE.c.epoch == epoch)
        .values(**fields, updated_at=int(time.time()))
    )


# What compute and publish wrote: cleared when a revoked epoch is reopened.
COMPUTED_FIELDS = (
    "root", "epoch_total", "total_cumulative", "leaf_count", "allocation_file", "uri", "propose_tx",
    "accept_tx", "valid_at",
)  # fmt: skip


def reopen(conn: Connection, *, chain_id: int, epoch: int, policy_hash: str) -> list[int]:
    """Move (chain, epoch) and every later row that was computed on top of it back to `closed`, their
    computed fields cleared and `policy_hash` set (the policy the recomputation will use): the epoch's
    root was revoked on chain. Returns the epochs reopened."""
    later = select(TABLE.c.epoch).where(
        TABLE.c.chain_id == chain_id,
        TABLE.c.epoch >= epoch,
        (TABLE.c.epoch == epoch) | (TABLE.c.status == COMPUTED),
    )
    reopened = [int(e) for e in conn.execute(later.order_by(TABLE.c.epoch)).scalars()]
    if reopened:
        cleared: dict[str, Any] = dict.fromkeys(COMPUTED_FIELDS)
        conn.execute(
            update(TABLE)
            .where(TABLE.c.chain_id == chain_id, TABLE.c.epoch.in_(reopened))
            .values(status=CLOSED, policy_hash=policy_hash, updated_at=int(time.time()), **cleared)
        )
    return reopened


def state(row: RewardEpoch) -> dict[str, Any]:
    """The row's STATE_FIELDS as a dict (the API's `engine` object)."""
    return {k: getattr(row, k) for k in STATE_FIELDS}
