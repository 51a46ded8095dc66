"""Alembic migrations of the backend's own tables (version table `alembic_version_backend`).

Shared by the rewards engine and the API. Revisions live in `versions/` with sequential ids (0001, 0002, ...);
each new revision sets `down_revision` to the previous id. Run them with `upgrade(engine)` (idempotent: a
database at head is left untouched), e.g. at the start of `cairn epoch ...` and `cairn api`.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

VERSION_TABLE = "alembic_version_backend"
HERE = Path(__file__).resolve().parent


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the backend tables of `engine` to `revision` (default: the newest)."""
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def current(engine: Engine) -> str | None:
    """The revision the database is at, or None before the first migration."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        return ctx.get_current_revision()
