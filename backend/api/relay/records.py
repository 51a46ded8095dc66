"""Relay records (`relay_record`, backend.models.RelayRecord): one per relayed signature, referencing the
outbox row that carries it. The transaction hash is not stored here: it is the outbox's (it changes when a
fee bump replaces an attempt)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select, update

from backend.models import metadata
from backend.outbox import store

RELAY = metadata.tables["relay_record"]


class AlreadyRecorded(Exception):
    """Raised inside the outbox's transaction when another request recorded this relay first."""


# Read-only view for the mirror's "a relayed registration was sent in tx ..." hint: the relay records with
# their current transaction hash (the reveal's once sent, else the commit's; the mined attempt's, else the
# latest attempt's). Named like the table so
# that "does the table exist yet" checks on `.name` keep working.
relay_records = (
    select(*RELAY.c, store.current_hash().label("tx_hash"))
    .join(store.TX, store.TX.c.id == func.coalesce(RELAY.c.reveal_outbox_id, RELAY.c.outbox_id))
    .subquery(RELAY.name)
)


def _first(engine: Engine, where: Any) -> dict[str, Any] | None:
    with engine.connect() as conn:
        row = conn.execute(select(RELAY).where(where)).first()
    return dict(row._mapping) if row else None


def by_relay_id(engine: Engine, relay_id: str) -> dict[str, Any] | None:
    return _first(engine, RELAY.c.relay_id == relay_id.lower())


def by_message(engine: Engine, message_digest: str) -> dict[str, Any] | None:
    return _first(engine, RELAY.c.message_digest == message_digest)


def by_content_hash(engine: Engine, content_hash: str) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(select(RELAY).where(RELAY.c.content_hash == content_hash)).all()
    return [dict(r._mapping) for r in rows]


def insert_new(conn: Connection, record: dict[str, Any]) -> None:
    """Insert `record`, unless this signature or message is recorded already (then AlreadyRecorded)."""
    taken = conn.execute(
        select(RELAY.c.relay_id).where(
            (RELAY.c.relay_id == record["relay_id"]) | (RELAY.c.message_digest == record["message_digest"])
        )
    ).first()
    if taken is not None:
        raise AlreadyRecorded(record["relay_id"])
    conn.execute(insert(RELAY).values(**record))


def repoint(conn: Connection, relay_id: str, *, old: int, new: int) -> None:
    """Move a relay to a new outbox row (its old one was replaced); AlreadyRecorded if another did it."""
    moved = conn.execute(
        update(RELAY).where(RELAY.c.relay_id == relay_id, RELAY.c.outbox_id == old).values(outbox_id=new)
    )
    if moved.rowcount != 1:
        raise AlreadyRecorded(relay_id)


def delete(conn: Connection, relay_id: str) -> None:
    conn.execute(RELAY.delete().where(RELAY.c.relay_id == relay_id))


def awaiting_reveal(engine: Engine, chain_id: int) -> list[dict[str, Any]]:
    """Relays whose reveal is not enqueued yet (their commit may or may not be mined)."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(RELAY).where(
                RELAY.c.chain_id == chain_id,
                RELAY.c.reveal_data.is_not(None),
                RELAY.c.reveal_outbox_id.is_(None),
                RELAY.c.failure.is_(None),
            )
        ).all()
    return [dict(r._mapping) for r in rows]


def set_reveal(conn: Connection, relay_id: str, oid: int) -> None:
    """Point a relay at its reveal's outbox row; AlreadyRecorded if another process did it first."""
    moved = conn.execute(
        update(RELAY)
        .where(RELAY.c.relay_id == relay_id, RELAY.c.reveal_outbox_id.is_(None))
        .values(reveal_outbox_id=oid)
    )
    if moved.rowcount != 1:
        raise AlreadyRecorded(relay_id)


def clear_reveal(conn: Connection, relay_id: str, oid: int) -> None:
    """Undo `set_reveal` (its outbox row was discarded before broadcast)."""
    conn.execute(
        update(RELAY)
        .where(RELAY.c.relay_id == relay_id, RELAY.c.reveal_outbox_id == oid)
        .values(reveal_outbox_id=None)
    )


def fail(engine: Engine, relay_id: str, reason: str) -> None:
    """Mark a relay that can no longer succeed (nothing more is sent for it)."""
    with engine.begin() as conn:
        conn.execute(
            update(RELAY)
            .where(RELAY.c.relay_id == relay_id, RELAY.c.reveal_outbox_id.is_(None))
            .values(failure=reason)
        )
