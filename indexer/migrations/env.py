"""Alembic environment for the indexer's tables (version table `alembic_version_indexer`).

Run programmatically by `indexer.store.upgrade(engine, specs)`: the connection and the ABI-derived event
specs are passed in `config.attributes`.
"""

from __future__ import annotations

from alembic import context

VERSION_TABLE = "alembic_version_indexer"

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # pragma: no cover - always run through indexer.store.upgrade
    raise RuntimeError("run the indexer migrations through indexer.store.upgrade()")

context.configure(connection=connection, version_table=VERSION_TABLE, transaction_per_migration=False)
with context.begin_transaction():
    context.run_migrations()
