"""Shared fixtures: real anvil chains, real SQLite files and real PostgreSQL databases.

With CI=true a missing service is an error, never a skip.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from support.api_stack import Stack, build_stack, shared_stack
from support.pg import temporary_database

from cairn.cli.devchain import Anvil, start_anvil


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


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A brand-new PostgreSQL database for one test, dropped afterwards (no server: skip, or fail under
    CI=true)."""
    with temporary_database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: os.PathLike[str]) -> Iterator[str]:
    """Run the test once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/cairn-test.db"
    else:
        yield request.getfixturevalue("postgres_url")


@pytest.fixture(name="stack", scope="module", params=["sqlite", "postgres"])
def stack_fixture(request: pytest.FixtureRequest) -> Stack:
    """The shared read-only API stack (tests/support/api_stack.py) of this database kind."""
    return shared_stack(request, request.param)


@pytest.fixture(scope="module")
def sqlite_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A fresh API stack on SQLite for the tests of one module that write to it."""
    yield from build_stack(tmp_path_factory.mktemp("api-sqlite"), "sqlite")
