"""Reorgs injected with anvil_reorg at every depth up to the confirmation depth, while the indexer follows the
chain; after each, the database equals a from-scratch reindex into a new database of the same kind (SQLite
or PostgreSQL) and the ground truth. Also: a reorg while the indexer is down, a reorg deeper than the window
(clear error), and a node that is behind (not a reorg)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from support.indexer_chain import DEV_ACCOUNT, db_rows, emit, emit_all_data, emitter_deployment, ground_truth
from support.pg import temporary_database

from cairn.cli.devchain import Anvil, start_anvil
from cairn.core.deployment import Deployment, load_deployment
from cairn.core.errors import DeepReorgError
from cairn.core.settings import Settings
from indexer.core import Indexer, IndexerOptions

Rows = dict[str, list[tuple[object, ...]]]
CONFIRMATIONS = 12 if os.environ.get("CI") == "true" else 5


def make_indexer(urls: list[str], db: str, dep_path: Path, confirmations: int = CONFIRMATIONS) -> Indexer:
    settings = Settings(rpc_urls=urls, database_url=db, deployment_file=dep_path, confirmations=confirmations)
    options = IndexerOptions(poll_interval=0.02, finality="confirmations", initial_range=5, rpc_attempts=4)
    return Indexer(settings, load_deployment(dep_path), options=options)


def reorg(anvil: Anvil, dep: Deployment, depth: int, seed: int) -> None:
    """Replace the last `depth` blocks with new ones carrying different transactions at varied offsets."""
    names = sorted(dep.contracts)
    txs = []
    for k in range(depth):
        if (seed + k) % 3 == 2:
            continue  # leave some replacement blocks empty
        to = dep.contracts[names[(seed + k) % len(names)]].address
        tx = {"from": DEV_ACCOUNT, "to": to, "data": emit_all_data(seed * 1000 + k), "gas": hex(3_000_000)}
        txs.append([tx, k])
    anvil.rpc("anvil_reorg", [depth, txs])


def wait_at_head(idx: Indexer, anvil: Anvil, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        head = anvil.rpc("eth_getBlockByNumber", ["latest", False])
        cur = idx.store.cursor()
        if cur is not None and isinstance(head, dict) and cur.block_hash == head["hash"]:
            return
        time.sleep(0.01)
    raise AssertionError("indexer did not reach the head")


@contextmanager
def fresh_database(like: str, tmp: Path, n: int) -> Iterator[str]:
    """A new, empty database of the same kind as `like` (a new PostgreSQL database is dropped afterwards)."""
    if not like.startswith("postgres"):
        yield f"sqlite:///{tmp}/scratch-{n}.db"
        return
    with temporary_database("cairn_t_scratch") as url:
        yield url


def reindex_from_scratch(anvil: Anvil, dep_path: Path, like: str, tmp: Path, n: int) -> Rows:
    """Every event table after indexing the whole chain into a new database of the kind of `like`."""
    with fresh_database(like, tmp, n) as url:
        fresh = make_indexer([anvil.url], url, dep_path)
        try:
            fresh.run_once()
            return db_rows(fresh.engine, sorted({s.table for s in fresh.specs.values()}))
        finally:
            fresh.close()


def test_reorgs_every_depth_while_following(anvil: Anvil, database_url: str, tmp_path: Path) -> None:
    dep_path = tmp_path / "dep.json"
    dep = emitter_deployment(anvil.url, dep_path)
    for seed in range(1, 21):
        emit(anvil.url, dep, seed)
    idx = make_indexer([anvil.url], database_url, dep_path)
    postgres = database_url.startswith("postgres")
    idx.prepare()
    stop = threading.Event()
    runner = threading.Thread(target=idx.run, args=(stop,))
    runner.start()
    try:
        for depth in range(1, CONFIRMATIONS + 1):
            for seed in range(depth * 100, depth * 100 + depth + 1):
                emit(anvil.url, dep, seed)
            wait_at_head(idx, anvil)
            reorg(anvil, dep, depth, seed=depth)
            wait_at_head(idx, anvil)
            truth = ground_truth(anvil.url, dep, postgres=postgres)
            rows = db_rows(idx.engine, list(truth))
            assert rows == truth, f"depth {depth}"
            scratch = reindex_from_scratch(anvil, dep_path, database_url, tmp_path, depth)
            assert scratch == rows, f"depth {depth}: after the reorg != a from-scratch reindex"
        assert idx.reorgs == CONFIRMATIONS
    finally:
        stop.set()
        runner.join(10)
    assert not runner.is_alive()


def test_reorg_while_down_is_repaired_at_start(anvil: Anvil, database_url: str, tmp_path: Path) -> None:
    dep_path = tmp_path / "dep.json"
    dep = emitter_deployment(anvil.url, dep_path)
    for seed in range(1, 15):
        emit(anvil.url, dep, seed)
    idx = make_indexer([anvil.url], database_url, dep_path)
    idx.run_once()
    idx.close()
    reorg(anvil, dep, 4, seed=7)
    idx2 = make_indexer([anvil.url], database_url, dep_path)
    idx2.run_once()
    assert idx2.reorgs == 1
    truth = ground_truth(anvil.url, dep, postgres=database_url.startswith("postgres"))
    assert db_rows(idx2.engine, list(truth)) == truth


def test_reorg_deeper_than_window_is_an_error(anvil: Anvil, sqlite_url: str, tmp_path: Path) -> None:
    dep_path = tmp_path / "dep.json"
    dep = emitter_deployment(anvil.url, dep_path)
    for seed in range(1, 15):
        emit(anvil.url, dep, seed)
    idx = make_indexer([anvil.url], sqlite_url, dep_path, confirmations=3)
    idx.run_once()
    head = idx.cursor.block_number if idx.cursor else 0
    reorg(anvil, dep, 6, seed=3)
    idx2 = make_indexer([anvil.url], sqlite_url, dep_path, confirmations=3)
    expected = rf"block {head - 3} \(0x[0-9a-f]{{64}}\) is no longer on the chain"
    with pytest.raises(DeepReorgError, match=expected):
        idx2.run_once()


def test_node_behind_is_not_a_reorg(anvil: Anvil, sqlite_url: str, tmp_path: Path) -> None:
    dep_path = tmp_path / "dep.json"
    dep = emitter_deployment(anvil.url, dep_path)
    for seed in range(1, 10):
        emit(anvil.url, dep, seed)
    behind_at = int(str(anvil.rpc("eth_blockNumber")), 16)
    for seed in range(10, 20):
        emit(anvil.url, dep, seed)
    idx = make_indexer([anvil.url], sqlite_url, dep_path)
    idx.run_once()
    idx.close()
    # a lagging node on the same chain: a fork of the same history, stopped at an older block
    with start_anvil(extra_args=["--fork-url", anvil.url, "--fork-block-number", str(behind_at)]) as lagging:
        idx2 = make_indexer([lagging.url, anvil.url], sqlite_url, dep_path)
        progress = idx2.step()
        assert progress.mode == "behind"  # the lagging node's head is below our cursor: no rollback
        for seed in range(20, 25):
            emit(anvil.url, dep, seed)
        idx2.run_once()  # failed over to the node that is up to date
        assert idx2.reorgs == 0
        truth = ground_truth(anvil.url, dep, postgres=False)
        assert db_rows(idx2.engine, list(truth)) == truth
