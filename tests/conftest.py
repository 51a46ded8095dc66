"""Shared fixtures: real anvil chains, real SQLite files and real PostgreSQL databases.

With CI=true a missing service is an error, never a skip.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text
from support.pg import PG_ADMIN_URL, temporary_database

from cairn.cli.devchain import Anvil, start_anvil

IN_CI = os.environ.get("CI") == "true"


@pytest.fixture(scope="session")
def anvil_session() -> Iterator[Anvil]:
    """One anvil for tests that only read or that snapshot/revert around themselves."""
    with start_anvil() as chain:
        yield chain


@pytest.fixture
def anvil() -> Iterator[Anvil]:
    """A fresh anvil per test (needed for reorg, crash and mining-control tests)."""
    with start_anvil() as chain:
        yield chain


@pytest.fixture
def sqlite_url(tmp_path: os.PathLike[str]) -> str:
    return f"sqlite:///{tmp_path}/cairn-test.db"


def _pg_available() -> bool:
    try:
        eng = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with eng.connect() as conn:
            conn.execute(text("SELECT 1"))
        eng.dispose()
        return True
    except Exception:
        return False


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A brand-new PostgreSQL database for one test, dropped afterwards."""
    if not _pg_available():
        if IN_CI:
            pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN_URL} (CI must not skip it)")
        pytest.skip("PostgreSQL not running")
    with temporary_database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: os.PathLike[str]) -> Iterator[str]:
    """Run the test once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/cairn-test.db"
    else:
        yield request.getfixturevalue("postgres_url")
