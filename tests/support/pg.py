"""Temporary PostgreSQL databases for tests: one place that creates and drops them on the server the
machine runs (127.0.0.1:5432, or CAIRN_TEST_POSTGRES_URL), and one rule for a server that is not there:
skip locally, fail under CI=true."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

PG_ADMIN_URL = os.environ.get(
    "CAIRN_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
IN_CI = os.environ.get("CI") == "true"


def _admin_execute(sql: str) -> None:
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(sql))
    finally:
        admin.dispose()


def require_postgres() -> None:
    """Skip the calling test when the server does not answer, or fail it under CI=true (CI never skips).

    Only a server that cannot be connected to is a skip; any later error (a failing CREATE DATABASE, ...)
    is raised where it happens.
    """
    try:
        _admin_execute("SELECT 1")
    except OperationalError as exc:
        if IN_CI:
            pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN_URL} (CI must not skip it): {exc}")
        pytest.skip(f"PostgreSQL not running at {PG_ADMIN_URL}")


def create_database(prefix: str = "cairn_t") -> str:
    """A new empty database; returns its SQLAlchemy URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    _admin_execute(f'CREATE DATABASE "{name}"')
    return f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"


def drop_database(url: str) -> None:
    """Drop a database made by `create_database` (connections to it are terminated)."""
    _admin_execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


@contextmanager
def temporary_database(prefix: str = "cairn_t") -> Iterator[str]:
    """A new database for the `with` block (the test is skipped, or failed under CI, without a server),
    dropped afterwards."""
    require_postgres()
    url = create_database(prefix)
    try:
        yield url
    finally:
        drop_database(url)
