"""The SQL fast path on both databases: PostgreSQL (NUMERIC wei) and SQLite (TEXT wei) reduce
random histories to exactly what the Python audit reduction gives."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from sqlalchemy import text
from support.histories import EPOCH, histories

from backend.rewards.allocation import EVENT_TABLES, allocate, inputs_from_events
from backend.rewards.events import create_event_tables, insert_rows
from backend.rewards.sqlsource import inputs_from_db
from cairn.core.db import make_engine


def test_sql_path_matches_audit_path_on_both_databases(database_url: str) -> None:
    engine = make_engine(database_url)
    with engine.begin() as conn:
        create_event_tables(conn)

    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
    @given(case=histories())
    def check(case: Any) -> None:
        events, end_block, policy = case
        with engine.begin() as conn:
            for table in EVENT_TABLES:
                conn.execute(text(f"DELETE FROM {table}"))
                insert_rows(conn, table, events[table])
        from_sql = inputs_from_db(engine, EPOCH, end_block, policy)
        from_chain = inputs_from_events(events, EPOCH, end_block, policy)
        assert from_sql == from_chain
        assert allocate(from_sql, policy) == allocate(from_chain, policy)

    try:
        check()
    finally:
        engine.dispose()
