"""Database side of the indexer: migrations, the cursor, block hashes and batched upserts in one transaction.

Every write goes through `Store.transaction` (`Store.commit` is its one-batch form), which in ONE transaction:
optionally rolls back every row above a block (reorg), upserts the new rows keyed by (block_number, log_index)
(as a replace of the batch's blocks: delete their rows, then COPY on PostgreSQL / executemany on SQLite; a
backfill transaction writes several consecutive ranges' batches), records the hashes of unfinalized blocks,
prunes hashes that became final, and moves the cursor; it cannot commit without the cursor. A crash at any
point leaves the database at the previous commit: rows, hashes and cursor always agree. Commits are durable
(PostgreSQL's default `synchronous_commit`; see docs/ARCHITECTURE.md, "Indexer durability").
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, inspect, text

from cairn.core.events import BIGINT, FIXED_COLUMNS, ITEM_INDEX, UINT256, EventSpec
from indexer.schema import sync_event_tables
from indexer.views import create_views

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
HEAD_REVISION = "0002"  # the newest file in indexer/migrations/versions (checked by a unit test)
VERSION_TABLE = "alembic_version_indexer"


@dataclass(frozen=True)
class Cursor:
    chain_id: int
    block_number: int
    block_hash: str


def upgrade(engine: Engine, specs: dict[str, EventSpec]) -> None:
    """Run the Alembic migrations to head, then reconcile the ABI-derived tables and views (idempotent).

    Alembic itself is imported only when the database is not at HEAD_REVISION yet (it costs about a second
    of start-up, and a restart after a crash must commit its first block fast)."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            # serialise concurrent starters (API thread + CLI) on the same database
            conn.execute(text("SELECT pg_advisory_xact_lock(727274)"))
        current = None
        if inspect(conn).has_table(VERSION_TABLE):
            current = conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()
        if current != HEAD_REVISION:
            from alembic import command
            from alembic.config import Config

            cfg = Config()
            cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
            cfg.attributes["connection"] = conn
            cfg.attributes["specs"] = specs
            command.upgrade(cfg, "head")
        sync_event_tables(conn, specs)
        create_views(conn, {s.table for s in specs.values()})


class Store:
    """Reads and atomic writes of the mirror for one deployment."""

    def __init__(self, engine: Engine, specs: dict[str, EventSpec]) -> None:
        self.engine = engine
        self.specs = specs
        self.dialect = engine.dialect.name
        self.tables = sorted({s.table for s in specs.values()})
        self._insert_sql: dict[str, str] = {}
        self._columns: dict[str, list[str]] = {s.table: s.column_names for s in specs.values()}
        self._copy_formatters = {s.table: _copy_formatter(s) for s in specs.values()}
        ph = "%s" if self.dialect == "postgresql" else "?"
        for spec in specs.values():
            if spec.table in self._insert_sql:
                continue
            cols = spec.column_names
            quoted = ", ".join(f'"{c}"' for c in cols)
            values = ", ".join([ph] * len(cols))
            self._insert_sql[spec.table] = f'INSERT INTO "{spec.table}" ({quoted}) VALUES ({values})'

    # --- reads -------------------------------------------------------------------------------------
    def cursor(self) -> Cursor | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                text("SELECT chain_id, block_number, block_hash FROM indexer_cursor WHERE id = 1")
            ).first()
        return Cursor(int(row[0]), int(row[1]), str(row[2])) if row else None

    def stored_blocks(self) -> list[tuple[int, str]]:
        """Hashes of the blocks we keep (unfinalized window + cursor), newest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                text("SELECT block_number, block_hash FROM indexer_blocks ORDER BY block_number DESC")
            ).all()
        return [(int(r[0]), str(r[1])) for r in rows]

    # --- the one write -------------------------------------------------------------------------------
    def commit(
        self,
        *,
        chain_id: int,
        rows: dict[str, list[tuple[Any, ...]]],
        blocks: Sequence[tuple[int, str, str]],
        cursor: tuple[int, str],
        rollback_to: int | None = None,
        prune_below: int | None = None,
    ) -> None:
        """Rollback (optional) + upsert rows + block hashes + prune + cursor, in one transaction."""
        with self.transaction(rollback_to=rollback_to) as tx:
            tx.write(rows)
            tx.finish(chain_id=chain_id, blocks=blocks, cursor=cursor, prune_below=prune_below)

    @contextmanager
    def transaction(self, *, rollback_to: int | None = None) -> Iterator[Transaction]:
        """One transaction that may write rows in several batches (`write`) and must end with `finish` (block
        hashes + cursor); it commits only then. An exception, or leaving without `finish`, rolls back."""
        with self.engine.begin() as conn:
            tx = Transaction(self, conn)
            if rollback_to is not None:
                tx.rollback_above(rollback_to)
            try:
                yield tx
            finally:
                tx.close()
            if not tx.finished:
                raise RuntimeError("indexer transaction left without finish(): rolled back")

    def _replace_sqlite(self, cur: Any, table: str, batch: list[tuple[Any, ...]]) -> None:
        """SQLite: replace the batch's blocks (same upsert semantics as `_copy_upsert`; a plain INSERT into a
        WITHOUT ROWID table is markedly faster than INSERT ... ON CONFLICT DO UPDATE)."""
        lo, hi = _block_span(batch)
        cur.execute(f'DELETE FROM "{table}" WHERE block_number >= ? AND block_number <= ?', (lo, hi))
        cur.executemany(self._insert_sql[table], batch)

    def _copy_upsert(self, cur: Any, table: str, batch: list[tuple[Any, ...]]) -> None:
        """PostgreSQL: replace the batch's blocks, at COPY speed. A batch holds every log of its blocks, so
        deleting those blocks' rows and copying the batch gives the same result as an upsert keyed by
        (block_number, log_index) (and also drops rows no longer in those blocks)."""
        lo, hi = _block_span(batch)
        cur.execute(f'DELETE FROM "{table}" WHERE block_number >= %s AND block_number <= %s', (lo, hi))
        cols = ", ".join(f'"{c}"' for c in self._columns[table])
        fmt = self._copy_formatters[table]
        with cur.copy(f'COPY "{table}" ({cols}) FROM STDIN') as copy:
            # rows are preformatted as COPY text in one string per chunk (much faster than write_row)
            for start in range(0, len(batch), 5000):
                copy.write("".join([fmt(row) for row in batch[start : start + 5000]]))

    def _put_blocks(self, conn: Any, blocks: Sequence[tuple[int, str, str]]) -> None:
        conn.execute(
            text(
                "INSERT INTO indexer_blocks (block_number, block_hash, parent_hash) VALUES (:n, :h, :p) "
                "ON CONFLICT (block_number) DO UPDATE SET block_hash = excluded.block_hash, "
                "parent_hash = excluded.parent_hash"
            ),
            [{"n": n, "h": h, "p": p} for n, h, p in blocks],
        )


class Transaction:
    """An open write transaction of `Store.transaction`: row batches, then `finish` with hashes and cursor."""

    def __init__(self, store: Store, conn: Connection) -> None:
        self.store = store
        self.conn = conn
        self.finished = False
        self._cur: Any = None

    def rollback_above(self, block: int) -> None:
        """Delete every row and block hash above `block` (reorg)."""
        for table in self.store.tables:
            self.conn.execute(text(f'DELETE FROM "{table}" WHERE block_number > :n'), {"n": block})
        self.conn.execute(text("DELETE FROM indexer_blocks WHERE block_number > :n"), {"n": block})

    def write(self, rows: dict[str, list[tuple[Any, ...]]]) -> None:
        """Upsert one batch of rows (each table's batch holds every log of its blocks)."""
        if self.finished:
            raise RuntimeError("write after finish()")
        for table, batch in rows.items():
            if not batch:
                continue
            if self._cur is None:
                raw = self.conn.connection.driver_connection
                assert raw is not None
                self._cur = raw.cursor()
            if self.store.dialect == "postgresql":
                self.store._copy_upsert(self._cur, table, batch)
            else:
                self.store._replace_sqlite(self._cur, table, batch)

    def finish(
        self,
        *,
        chain_id: int,
        blocks: Sequence[tuple[int, str, str]],
        cursor: tuple[int, str],
        prune_below: int | None = None,
    ) -> None:
        """Record block hashes, prune final ones, move the cursor: the transaction may commit after this."""
        self.close()
        conn = self.conn
        if blocks:
            self.store._put_blocks(conn, blocks)
        if prune_below is not None:
            conn.execute(
                text("DELETE FROM indexer_blocks WHERE block_number < :n AND block_number < :c"),
                {"n": prune_below, "c": cursor[0]},
            )
        params = {"c": chain_id, "n": cursor[0], "h": cursor[1], "t": int(time.time())}
        updated = conn.execute(
            text(
                "UPDATE indexer_cursor SET chain_id = :c, block_number = :n, block_hash = :h, "
                "updated_at = :t WHERE id = 1"
            ),
            params,
        ).rowcount
        if not updated:
            conn.execute(
                text(
                    "INSERT INTO indexer_cursor (id, chain_id, block_number, block_hash, updated_at) "
                    "VALUES (1, :c, :n, :h, :t)"
                ),
                params,
            )
        self.finished = True

    def close(self) -> None:
        if self._cur is not None:
            self._cur.close()
            self._cur = None


def _block_span(batch: list[tuple[Any, ...]]) -> tuple[int, int]:
    """Lowest and highest block of a batch (rows are in chain order, but do not rely on it)."""
    blocks = [r[0] for r in batch]
    return min(blocks), max(blocks)


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_value(v: Any) -> str:
    """Any value in PostgreSQL COPY text format (the general, slower path)."""
    if v is None:
        return "\\N"
    if v is True:
        return "t"
    if v is False:
        return "f"
    if isinstance(v, int):
        return str(v)
    return str(v).translate(_COPY_ESCAPES)


def _copy_formatter(spec: EventSpec) -> Any:
    """`row -> line` in COPY text format. Integer and 0x-hex columns (never NULL, never escaped) are
    formatted inline; strings, JSON, booleans and anything else go through `_copy_value`."""
    parts = ["str(r[0])", "str(r[1])", "r[2]", "r[3]", "r[4]", "str(r[5])"]
    if spec.exploded:
        parts.append("str(r[6])")  # item_index
    for i, col in enumerate(spec.columns, start=len(parts)):
        typ = col.abi_type
        fixed_bytes = typ.startswith("bytes") and typ != "bytes" and not typ.endswith("]")
        simple_hex = typ == "address" or fixed_bytes
        if col.kind in (BIGINT, UINT256) and not col.abi_type.endswith("]"):
            parts.append(f"str(r[{i}])")
        elif simple_hex or (col.indexed and col.abi_type in ("string", "bytes")):
            parts.append(f"r[{i}]")
        else:
            parts.append(f"_v(r[{i}])")
    code = "def f(r):\n    return " + " + '\\t' + ".join(parts) + " + '\\n'\n"
    namespace: dict[str, Any] = {"_v": _copy_value}
    exec(compile(code, "<indexer.store copy>", "exec"), namespace)
    return namespace["f"]


def latest_indexed_block(engine: Engine) -> int | None:
    """The last block committed by the indexer (None before the first commit or before migrations)."""
    try:
        with engine.connect() as conn:
            row = conn.execute(text("SELECT block_number FROM indexer_cursor WHERE id = 1")).first()
    except Exception:  # table not created yet
        return None
    return int(row[0]) if row else None


def dump_events(engine: Engine, tables: Sequence[str]) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the given event tables ordered by key (used by tests and `cairn index --verify`)."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    with engine.connect() as conn:
        for table in tables:
            columns = {c["name"] for c in inspect(conn).get_columns(table)}
            key = "block_number, log_index" + (f", {ITEM_INDEX}" if ITEM_INDEX in columns else "")
            rows = conn.execute(text(f'SELECT * FROM "{table}" ORDER BY {key}')).all()
            out[table] = [tuple(r) for r in rows]
    return out


__all__ = [
    "FIXED_COLUMNS",
    "Cursor",
    "Store",
    "Transaction",
    "dump_events",
    "latest_indexed_block",
    "upgrade",
]
