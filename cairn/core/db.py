"""Database engines for SQLite (default, WAL) and PostgreSQL, and a clear error when unreachable."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import OperationalError

from cairn.core.errors import DatabaseUnreachableError


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def make_engine(url: str, *, check: bool = True, **kwargs: Any) -> Engine:
    """Create an engine for `url`; with `check`, fail fast with one line if the database is unreachable."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            from pathlib import Path

            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        if url.startswith("postgresql://") or url.startswith("postgres://"):
            url = "postgresql+psycopg://" + url.split("://", 1)[1]
        engine = create_engine(url, pool_pre_ping=True, **kwargs)
    if check:
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except OperationalError as exc:
            first = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
            raise DatabaseUnreachableError(f"database unreachable at {engine.url!r}: {first}") from None
    return engine


def database_kind(engine: Engine) -> str:
    return "postgresql" if engine.dialect.name == "postgresql" else "sqlite"
