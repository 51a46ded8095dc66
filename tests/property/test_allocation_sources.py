"""Two sources, one result: random event histories reduced by the SQL fast path (a real SQLite mirror in the
ev_* schema) and by the audit path (decoded events in Python) give identical inputs and allocations, and every
allocation sums exactly to the epoch's pools."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from sqlalchemy import text
from support.histories import ACCOUNTS, BATCH, EPOCH, MODELS, base_row, histories

from backend.rewards import sqlsource
from backend.rewards.allocation import EVENT_TABLES, allocate, cumulate, inputs_from_events
from backend.rewards.events import create_event_tables, explode_dataset_batch, insert_rows
from backend.rewards.sqlsource import inputs_from_db
from cairn.core.db import make_engine
from cairn.core.policy import load_policy

EXAMPLES = 400 if os.environ.get("CI") == "true" else 150


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=histories())
def test_sql_mirror_and_raw_events_give_identical_allocations(case: Any, tmp_path_factory: Any) -> None:
    _check_sources(case, Path(tmp_path_factory.getbasetemp()) / "property-mirror.db")


@settings(max_examples=EXAMPLES // 2, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=histories())
def test_two_process_reduction_gives_identical_allocations(case: Any, tmp_path_factory: Any) -> None:
    """The split of the id space over this process and a forked worker (used on big SQLite mirrors), forced
    on every history: the parts add up to what the audit path computes."""
    saved = sqlsource.PARALLEL_MIN_CONTRIBUTIONS
    sqlsource.PARALLEL_MIN_CONTRIBUTIONS = 1
    try:
        _check_sources(case, Path(tmp_path_factory.getbasetemp()) / "property-mirror-split.db")
    finally:
        sqlsource.PARALLEL_MIN_CONTRIBUTIONS = saved


def test_split_point_halves_the_contributions(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'split.db'}")
    rows = {
        "ev_dataset_registered": [
            {**base_row(1), "log_index": i, "content_hash": f"0x{0xD0000 + i:064x}", "owner": ACCOUNTS[0],
             "size": 1, "license_id": 1, "metadata_hash": "0x" + "33" * 32, "uri": "u"}
            for i in range(60)
        ],
        "ev_compute_registered": [
            {**base_row(2), "log_index": i, "contribution_id": f"0x{0xC0000 + i:064x}",
             "provider": ACCOUNTS[1], "model_id": MODELS[0], "job_id": "0x" + "44" * 32, "work_units": 1,
             "result_hash": "0x" + "55" * 32}
            for i in range(40)
        ],
    }  # fmt: skip
    try:
        with engine.begin() as conn:
            create_event_tables(conn)
            for table, table_rows in rows.items():
                insert_rows(conn, table, table_rows)
        saved = sqlsource.PARALLEL_MIN_CONTRIBUTIONS
        sqlsource.PARALLEL_MIN_CONTRIBUTIONS = 1
        # another thread in this process (an API or indexer thread, a test's leftover) must not stop the split
        idle = threading.Event()
        bystander = threading.Thread(target=idle.wait, daemon=True)
        bystander.start()
        try:
            with engine.connect() as conn:
                split = sqlsource._split_point(conn)
                # the two halves really run in two processes here (and the property test above uses them)
                parts = sqlsource._reduce(conn, 10, load_policy("v1"), [])
                conn.rollback()
        finally:
            idle.set()
            sqlsource.PARALLEL_MIN_CONTRIBUTIONS = saved
    finally:
        engine.dispose()
    # every compute id sorts below every dataset id: 40 compute + 10 datasets below the split, 50 above
    assert split == f"0x{0xD0000 + 10:064x}"
    assert len(parts) == 2


def _check_sources(case: Any, db: Path) -> None:
    events, end_block, policy = case
    engine = make_engine(f"sqlite:///{db}")
    try:
        with engine.begin() as conn:
            create_event_tables(conn)
            for table in [*EVENT_TABLES, BATCH]:
                conn.execute(text(f"DELETE FROM {table}"))
            for table in EVENT_TABLES:
                insert_rows(conn, table, events[table])
            # the indexer stores a batch log one row per item (cairn.core.events.EXPLODED_EVENTS)
            insert_rows(conn, BATCH, [item for b in events[BATCH] for item in explode_dataset_batch(b)])
        from_sql = inputs_from_db(engine, EPOCH, end_block, policy)
    finally:
        engine.dispose()
    # the audit path expands batch logs into dataset rows, as chainsource.fetch_events does
    chain_events = {t: rows for t, rows in events.items() if t != BATCH}
    chain_events["ev_dataset_registered"] = events["ev_dataset_registered"] + [
        item for b in events[BATCH] for item in explode_dataset_batch(b)
    ]
    from_chain = inputs_from_events(chain_events, EPOCH, end_block, policy)
    assert from_sql == from_chain

    alloc_sql = allocate(from_sql, policy)
    alloc_chain = allocate(from_chain, policy)
    assert alloc_sql == alloc_chain
    pools = from_chain.emission + sum(v for v in from_chain.revenue.values() if v > 0)
    assert sum(alloc_chain.values()) == pools
    assert all(v > 0 for v in alloc_chain.values())
    total = sum(alloc_chain.values())
    cap = total * policy.account_cap_bps // 10_000
    over = [a for a, v in alloc_chain.items() if v > cap and a != policy.treasury]
    assert not over
    prev = {ACCOUNTS[0]: 7}
    cum = cumulate(prev, alloc_chain)
    assert all(cum[a] >= v for a, v in prev.items())
