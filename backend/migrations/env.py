"""Alembic environment for the backend's tables (version table `alembic_version_backend`).

Run programmatically by `backend.migrations.upgrade(engine)`, which passes the connection in
`config.attributes["connection"]`.
"""

from __future__ import annotations

from alembic import context

VERSION_TABLE = "alembic_version_backend"

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # pragma: no cover - always run through backend.migrations.upgrade
    raise RuntimeError("run the backend migrations through backend.migrations.upgrade()")

context.configure(
    connection=connection,
    version_table=VERSION_TABLE,
    transaction_per_migration=False,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
