"""`cairn train`'s selection and reading on a real mirror schema (the indexer's ev_* tables, cursor and
views) in SQLite and PostgreSQL: only datasets meeting the policy's quorum at the cursor's block are trained
on, with the reward function's rule (latest attestation per validator, median >= min_score, not withdrawn);
datasets whose content is missing or is not text are skipped with the reason."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text
from support.histories import ACCOUNTS, VALIDATORS, base_row
from support.pg import create_database, drop_database, require_postgres

from backend.inference.training import Candidate, select_datasets, train_from_store
from backend.rewards.events import create_event_tables, explode_dataset_batch, insert_rows
from cairn.core.content import ContentStore, content_hash
from cairn.core.db import make_engine
from cairn.core.errors import InvalidInputError
from cairn.core.policy import load_policy
from indexer.schema import core_metadata
from indexer.views import create_views

CURSOR = 10
D = [f"0x{0xD000 + i:064x}" for i in range(7)]


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "postgres":
        require_postgres()
        url = create_database("cairn_train")
    else:
        url = f"sqlite:///{tmp_path / 'mirror.db'}"
    eng = make_engine(url)
    try:
        yield eng
    finally:
        eng.dispose()
        if request.param == "postgres":
            drop_database(url)


def _att(block: int, log: int, cid: str, validator: int, score: int) -> dict[str, Any]:
    return {**base_row(block), "log_index": log, "contribution_id": cid, "validator": VALIDATORS[validator],
            "score": score}  # fmt: skip


def _mirror(engine: Engine) -> None:
    singles = [
        {**base_row(1), "log_index": i, "content_hash": D[i], "owner": ACCOUNTS[i % 2], "size": 100 + i,
         "license_id": 1, "metadata_hash": "0x" + "33" * 32, "uri": f"ipfs://{i}"}
        for i in range(5)
    ]  # fmt: skip
    batch = {**base_row(2), "owner": ACCOUNTS[2], "license_id": 1, "metadata_hash": "0x" + "33" * 32,
             "uri": "ipfs://batch", "content_hashes": [D[5], D[6]], "sizes": [7, 8]}  # fmt: skip
    atts = []
    log = 0
    for cid, scores in (
        (D[0], (9000, 8000, 7000)),  # eligible: median 8000
        (D[1], (4000, 4000, 9000)),  # median 4000 < min_score 5000
        (D[2], (9000, 9000)),  # two validators: below the quorum of 3
        (D[3], (9000, 9000, 9000)),  # withdrawn below
        (D[4], (9000, 9000)),  # its third attestation comes after the cursor's block
        (D[5], (6000, 6000, 6000)),  # eligible, registered in a batch
        (D[6], (1000, 9000, 9000)),  # validator 0 raises its 1000 to 9000 later: eligible
    ):
        for v, s in enumerate(scores):
            atts.append(_att(3, log, cid, v, s))
            log += 1
    atts += [_att(4, 0, D[6], 0, 9000), _att(4, 1, D[1], 0, 4000), _att(CURSOR + 1, 0, D[4], 2, 9000)]
    with engine.begin() as conn:
        create_event_tables(conn)
        core_metadata().create_all(conn)
        insert_rows(conn, "ev_dataset_registered", singles)
        insert_rows(conn, "ev_dataset_batch_registered", explode_dataset_batch(batch))
        insert_rows(conn, "ev_attested", atts)
        insert_rows(conn, "ev_contribution_withdrawn", [{**base_row(5), "contribution_id": D[3],
                                                         "owner": ACCOUNTS[1]}])  # fmt: skip
        conn.execute(
            text("INSERT INTO indexer_cursor (id, chain_id, block_number, block_hash, updated_at) "
                 "VALUES (1, 31337, :b, :h, 0)"),
            {"b": CURSOR, "h": "0x" + "00" * 32},
        )  # fmt: skip
        tables = [r[0] for r in conn.execute(text(
            "SELECT name FROM sqlite_master WHERE type = 'table'" if conn.dialect.name == "sqlite"
            else "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))]  # fmt: skip
        create_views(conn, tables)


def test_selection_follows_the_reward_functions_quorum_rule(engine: Engine) -> None:
    _mirror(engine)
    end, chosen = select_datasets(engine, load_policy("v1"))
    assert end == CURSOR
    assert chosen == [
        Candidate(D[0], ACCOUNTS[0], 100, 8000),
        Candidate(D[5], ACCOUNTS[2], 7, 6000),
        Candidate(D[6], ACCOUNTS[2], 8, 9000),
    ]


def test_an_unindexed_mirror_is_one_clear_error(engine: Engine) -> None:
    with pytest.raises(InvalidInputError, match="run `cairn index` first"):
        select_datasets(engine, load_policy("v1"))


def test_missing_binary_and_empty_content_are_skipped_with_the_reason(tmp_path: Path) -> None:
    store = ContentStore(tmp_path / "content", max_bytes=1 << 20)
    texts = {b"Validators attest. Trainers train on text.": "text", b"\xff\xfe\x00binary": "binary",
             b"  \n--- \n": "empty", b"never stored": "absent"}  # fmt: skip
    ids = {}
    for data, label in texts.items():
        digest = content_hash(data)
        ids[label] = "0x" + digest.hex()
        if label != "absent":
            store.put_bytes(digest, data)
    cands = sorted((Candidate(h, ACCOUNTS[0], 1, 9000) for h in ids.values()), key=lambda c: c.content_hash)
    art, skipped = train_from_store(store, cands)
    assert art.dataset_ids == [ids["text"]] and art.weights == [1_000_000]
    assert store.has(bytes.fromhex(art.hash[2:]))
    reasons = {s.content_hash: s.reason for s in skipped}
    assert reasons == {
        ids["binary"]: "content is not UTF-8 text",
        ids["empty"]: "content has no text tokens",
        ids["absent"]: "content not in the store",
    }
    with pytest.raises(InvalidInputError, match="no eligible dataset has its content in the store"):
        train_from_store(store, [Candidate(ids["absent"], ACCOUNTS[0], 1, 9000)])
