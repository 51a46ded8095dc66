"""backend.migrations: the rewards tables come up on SQLite and PostgreSQL, and upgrading twice is a no-op."""

from __future__ import annotations

from sqlalchemy import inspect

from backend import migrations
from cairn.core.db import make_engine


def test_upgrade_creates_tables_and_is_idempotent(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        assert migrations.current(engine) is None
        migrations.upgrade(engine)
        migrations.upgrade(engine)
        assert migrations.current(engine) is not None
        names = set(inspect(engine).get_table_names())
        assert {"reward_epoch", "outbox_tx", "outbox_attempt", "alembic_version_backend"} <= names
        assert "alembic_version" not in names
    finally:
        engine.dispose()
