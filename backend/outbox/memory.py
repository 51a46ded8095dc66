"""An outbox database for a one-off run that has none configured (`cairn deploy`, dev-chain set-up).

A private in-memory SQLite database at the migrations' head. Crash safety ends with the process, and the
nonces are not shared with other processes through it: use it only for runs that wait for every
transaction before they return (the deployer does) and are not run next to another sender on the same key.
"""

from __future__ import annotations

from sqlalchemy import Engine, create_engine
from sqlalchemy.pool import StaticPool

from backend import migrations


def memory_engine() -> Engine:
    engine = create_engine("sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False})
    migrations.upgrade(engine)
    return engine
