"""The SQLModel models (`backend.models`) and the Alembic migrations' head describe the same tables, on SQLite
and on PostgreSQL: a model changed without a revision (or the reverse) fails here."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine

from backend import migrations
from backend.models import metadata
from cairn.core.db import make_engine


def _diff(engine: Engine) -> list[object]:
    migrations.upgrade(engine)
    with engine.connect() as conn:
        ctx = MigrationContext.configure(
            conn, opts={"version_table": migrations.VERSION_TABLE, "compare_type": True}
        )
        return list(compare_metadata(ctx, metadata))


def test_models_match_migrations_on_sqlite(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'm.db'}")
    try:
        assert _diff(engine) == []
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_models_match_migrations_on_postgres(postgres_url: str) -> None:
    engine = make_engine(postgres_url)
    try:
        assert _diff(engine) == []
    finally:
        engine.dispose()
