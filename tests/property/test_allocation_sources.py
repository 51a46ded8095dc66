"""Two sources, one result: random event histories reduced by the SQL fast path (a real SQLite mirror in the
ev_* schema) and by the audit path (decoded events in Python) give identical inputs and allocations, and every
allocation sums exactly to the epoch's pools."""

from __future__ import annotations

import os
import random
import threading
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from backend.rewards import sqlsource
from backend.rewards.allocation import EVENT_TABLES, allocate, cumulate, inputs_from_events
from backend.rewards.events import DATASET_BATCH, create_event_tables, explode_dataset_batch, insert_rows
from backend.rewards.sqlsource import inputs_from_db
from cairn.core.db import make_engine
from cairn.core.policy import Policy, load_policy, parse_policy

EXAMPLES = 400 if os.environ.get("CI") == "true" else 150
EPOCH = 5
ACCOUNTS = [f"0x{0x1000 + i:040x}" for i in range(6)]
VALIDATORS = [f"0x{0xA000 + i:040x}" for i in range(7)]
MODELS = [f"0x{0xE000 + i:064x}" for i in range(3)]
DATASETS = [f"0x{0xD000 + i:064x}" for i in range(8)]
COMPUTE = [f"0x{0xC000 + i:064x}" for i in range(5)]
UNKNOWN = f"0x{0xBAD:064x}"
BATCH = DATASET_BATCH.table


def _base(block: int) -> dict[str, Any]:
    return {
        "block_number": block,
        "log_index": 0,
        "block_hash": "0x" + "00" * 32,
        "tx_hash": "0x" + "11" * 32,
        "contract": "0x" + "22" * 20,
        "block_time": 1_700_000_000 + block,
    }


@st.composite
def histories(draw: st.DrawFn) -> tuple[dict[str, list[dict[str, Any]]], int, Policy]:
    blocks = st.integers(1, 40)
    ev: dict[str, list[dict[str, Any]]] = {t: [] for t in [*EVENT_TABLES, BATCH]}
    n_data = draw(st.integers(0, len(DATASETS)))
    # the last datasets are registered in up to two batches (one log each, shared owner, licence, location)
    n_single = draw(st.integers(0, n_data))
    batched = DATASETS[n_single:n_data]
    cut = draw(st.integers(0, len(batched)))
    for items in (batched[:cut], batched[cut:]):
        if items:
            ev[BATCH].append(
                {
                    **_base(draw(blocks)),
                    "owner": draw(st.sampled_from(ACCOUNTS)),
                    "license_id": 2,
                    "metadata_hash": "0x" + "77" * 32,
                    "uri": "ipfs://batch",
                    "content_hashes": list(items),
                    "sizes": [draw(st.integers(0, 2**64 - 1)) for _ in items],
                }
            )
    for cid in DATASETS[:n_single]:
        ev["ev_dataset_registered"].append(
            {
                **_base(draw(blocks)),
                "content_hash": cid,
                "owner": draw(st.sampled_from(ACCOUNTS)),
                "size": draw(st.integers(0, 2**64 - 1)),
                "license_id": 1,
                "metadata_hash": "0x" + "33" * 32,
                "uri": "ipfs://x",
            }
        )
    n_comp = draw(st.integers(0, len(COMPUTE)))
    for cid in COMPUTE[:n_comp]:
        ev["ev_compute_registered"].append(
            {
                **_base(draw(blocks)),
                "contribution_id": cid,
                "provider": draw(st.sampled_from(ACCOUNTS)),
                "model_id": draw(st.sampled_from(MODELS)),
                "job_id": "0x" + "44" * 32,
                "work_units": draw(st.integers(0, 2**64 - 1)),
                "result_hash": "0x" + "55" * 32,
            }
        )
    cids = DATASETS[:n_data] + COMPUTE[:n_comp] + [UNKNOWN]
    scores = st.one_of(st.integers(0, 10_000), st.integers(4_000, 10_000), st.sampled_from([5_000, 7_000]))
    for cid in cids:
        for validator in draw(st.lists(st.sampled_from(VALIDATORS), max_size=9)):
            ev["ev_attested"].append(
                {**_base(draw(blocks)), "contribution_id": cid, "validator": validator, "score": draw(scores)}
            )
    for cid in draw(st.lists(st.sampled_from(cids), max_size=3, unique=True)):
        ev["ev_contribution_withdrawn"].append(
            {**_base(draw(blocks)), "contribution_id": cid, "owner": ACCOUNTS[0]}
        )
    for _ in range(draw(st.integers(0, 5))):
        ids = draw(st.lists(st.sampled_from([*DATASETS, UNKNOWN]), max_size=5))
        ev["ev_model_manifest_registered"].append(
            {
                **_base(draw(blocks)),
                "model_id": draw(st.sampled_from(MODELS)),
                "version": draw(st.integers(1, 3)),
                "trainer": ACCOUNTS[1],
                "dataset_ids": ids,
                "weights": [draw(st.integers(0, 2**32 - 1)) for _ in ids],
            }
        )
    amounts = st.one_of(st.integers(0, 10**6), st.integers(0, 10**27))
    for _ in range(draw(st.integers(0, 6))):
        amount = draw(amounts)
        ev["ev_payment_settled"].append(
            {
                **_base(draw(blocks)),
                "payer": ACCOUNTS[2],
                "model_id": draw(st.sampled_from([*MODELS, UNKNOWN])),
                "epoch": draw(st.sampled_from([4, 5, 5, 6])),
                "amount": amount,
                "fee": draw(st.integers(0, amount)),
                "request_hash": "0x" + "66" * 32,
                "request_count": 1,
            }
        )
    for _ in range(draw(st.integers(0, 4))):
        ev["ev_epoch_funded"].append(
            {
                **_base(draw(blocks)),
                "epoch": draw(st.sampled_from([4, 5, 5, 6])),
                "from": "0x" + "00" * 20,
                "amount": draw(amounts),
                "source": draw(st.sampled_from([0, 0, 1])),
            }
        )
    # unique (block_number, log_index): number the events of each block in a random order
    everything = [r for rows in ev.values() for r in rows]
    random.Random(draw(st.integers(0, 2**32))).shuffle(everything)
    counters: dict[int, int] = {}
    for r in everything:
        r["log_index"] = counters.get(r["block_number"], 0)
        counters[r["block_number"]] = r["log_index"] + 1
    raw = load_policy("v1").model_dump(mode="json")
    raw["attestation"]["quorum"] = draw(st.integers(1, 6))
    raw["attestation"]["min_score"] = draw(st.sampled_from([0, 5000, 9000]))
    raw["account_cap_bps"] = draw(st.sampled_from([10_000, 3_000, 1_000]))
    raw["cap_excess"] = draw(st.sampled_from(["redistribute", "treasury"]))
    return ev, draw(st.one_of(st.integers(0, 41), st.integers(30, 41))), parse_policy(raw)


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
            {**_base(1), "log_index": i, "content_hash": f"0x{0xD0000 + i:064x}", "owner": ACCOUNTS[0],
             "size": 1, "license_id": 1, "metadata_hash": "0x" + "33" * 32, "uri": "u"}
            for i in range(60)
        ],
        "ev_compute_registered": [
            {**_base(2), "log_index": i, "contribution_id": f"0x{0xC0000 + i:064x}",
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
