"""Mirror tables: `ev_<snake_event>` per event (built from the ABIs), `indexer_cursor`, `indexer_blocks`.

How Alembic and the ABI-derived tables coexist
----------------------------------------------
* The indexer's own bookkeeping tables (`indexer_cursor`, `indexer_blocks`) have a fixed shape and are created
  and evolved only by Alembic migrations in `indexer/migrations` (version table `alembic_version_indexer`).
* The event tables are a pure function of the ABIs in the deployment file, so they are not frozen into
  migration scripts (which would go stale the day a contract adds an event). Migration 0002 and every start of
  the indexer call `sync_event_tables`, which is idempotent: it creates every missing `ev_*` table for the
  current ABIs and checks that existing ones have exactly the expected columns. A contract upgrade that
  changes an existing event's fields makes that check fail with `SchemaMismatchError` naming the table
  (re-index into a fresh database); adding events just adds tables.
* The derived views of `indexer.views` are (re)created after the tables, also at every start.

Column conventions (docs/ARCHITECTURE.md): `block_number` BIGINT + `log_index` INTEGER primary key (plus
`item_index` INTEGER for the events of `cairn.core.events.EXPLODED_EVENTS`, stored one row per array element),
`block_hash`/`tx_hash`/`contract` TEXT 0x-lowercase, `block_time` BIGINT, then one column per argument.
`Uint256` is NUMERIC(78,0) on PostgreSQL and decimal TEXT on SQLite, read back as Python `int`.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Dialect,
    Engine,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    inspect,
)
from sqlalchemy.engine import Connection
from sqlalchemy.types import TypeDecorator, TypeEngine

from cairn.core.errors import SchemaMismatchError
from cairn.core.events import BIGINT, BOOL, ITEM_INDEX, UINT256, EventSpec


class Uint256(TypeDecorator[int]):
    """Integers up to 256 bits: NUMERIC(78,0) on PostgreSQL, decimal TEXT on SQLite; read as `int`."""

    impl = Numeric(78, 0)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(Numeric(78, 0))
        return dialect.type_descriptor(Text())

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if dialect.name == "postgresql":
            return int(value)
        return str(int(value))

    def process_result_value(self, value: Any, dialect: Dialect) -> int | None:
        if value is None:
            return None
        if isinstance(value, Decimal):
            return int(value)
        return int(value)


def core_metadata() -> MetaData:
    """The indexer's bookkeeping tables (their DDL is owned by the Alembic migrations)."""
    md = MetaData()
    Table(
        "indexer_cursor",
        md,
        Column("id", Integer, primary_key=True),
        Column("chain_id", BigInteger, nullable=False),
        Column("block_number", BigInteger, nullable=False),
        Column("block_hash", String(66), nullable=False),
        Column("updated_at", BigInteger, nullable=False),
    )
    Table(
        "indexer_blocks",
        md,
        Column("block_number", BigInteger, primary_key=True),
        Column("block_hash", String(66), nullable=False),
        Column("parent_hash", String(66), nullable=False),
    )
    return md


def _column_type(kind: str) -> TypeEngine[Any] | type[TypeEngine[Any]]:
    if kind == BIGINT:
        return BigInteger
    if kind == UINT256:
        return Uint256()
    if kind == BOOL:
        return Boolean
    return Text


def event_table(spec: EventSpec, metadata: MetaData) -> Table:
    cols: list[Column[Any]] = [
        Column("block_number", BigInteger, primary_key=True, autoincrement=False),
        Column("log_index", Integer, primary_key=True, autoincrement=False),
        Column("block_hash", Text, nullable=False),
        Column("tx_hash", Text, nullable=False),
        Column("contract", Text, nullable=False),
        Column("block_time", BigInteger, nullable=False),
    ]
    if spec.exploded:  # one row per array element (cairn.core.events.EXPLODED_EVENTS)
        cols.append(Column(ITEM_INDEX, Integer, primary_key=True, autoincrement=False))
    cols += [Column(c.name, _column_type(c.kind)) for c in spec.columns]
    # SQLite: cluster rows on the primary key (one b-tree, not a rowid table plus a key index)
    return Table(spec.table, metadata, *cols, comment=spec.signature, sqlite_with_rowid=False)


def event_metadata(specs: dict[str, EventSpec]) -> MetaData:
    md = MetaData()
    for spec in specs.values():
        if spec.table not in md.tables:
            event_table(spec, md)
    return md


def sync_event_tables(bind: Connection | Engine, specs: dict[str, EventSpec]) -> list[str]:
    """Create missing `ev_*` tables for `specs`; verify existing ones. Returns the names created."""
    md = event_metadata(specs)
    insp = inspect(bind)
    existing = set(insp.get_table_names())
    created: list[str] = []
    for name, table in md.tables.items():
        if name in existing:
            have = [c["name"] for c in insp.get_columns(name)]
            want = [c.name for c in table.columns]
            if have != want:
                raise SchemaMismatchError(
                    f"table {name} has columns {have} but the deployment ABIs need {want}; "
                    "the event changed: index into a fresh database"
                )
        else:
            created.append(name)
    if created:
        md.create_all(bind, tables=[md.tables[n] for n in created], checkfirst=True)
    return created
