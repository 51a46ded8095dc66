"""Indexer end to end on real anvil, SQLite and PostgreSQL: backfill, live, idempotence, views, chain id."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest
from sqlalchemy import text
from support.indexer_chain import db_rows, emit, emitter_deployment, ground_truth, total

from cairn.cli.devchain import Anvil
from cairn.core.errors import WrongChainError
from cairn.core.settings import REPO_ROOT, Settings
from indexer import latest_indexed_block
from indexer.core import Indexer, IndexerOptions
from indexer.views import payments_per_model_epoch


def make_indexer(anvil: Anvil, db: str, dep_path: Path, **opts: object) -> Indexer:
    settings = Settings(rpc_urls=[anvil.url], database_url=db, deployment_file=dep_path, confirmations=3)
    from cairn.core.deployment import load_deployment

    options = IndexerOptions(poll_interval=0.05, **opts)  # type: ignore[arg-type]
    return Indexer(settings, load_deployment(dep_path), options=options)


def test_backfill_live_and_idempotence(anvil: Anvil, database_url: str, tmp_path: Path) -> None:
    dep = emitter_deployment(anvil.url, tmp_path / "dep.json")
    for seed in range(1, 31):
        emit(anvil.url, dep, seed)
    anvil.rpc("anvil_mine", [80])  # some blocks become final under the `finalized` tag (head - 64)
    idx = make_indexer(anvil, database_url, tmp_path / "dep.json", initial_range=7)
    idx.run_once()
    postgres = database_url.startswith("postgres")
    truth = ground_truth(anvil.url, dep, postgres=postgres)
    assert total(truth) > 150
    assert db_rows(idx.engine, list(truth)) == truth
    # live: more events while a follower runs in a thread
    stop = threading.Event()
    runner = threading.Thread(target=idx.run, args=(stop,))
    runner.start()
    try:
        for seed in range(31, 41):
            emit(anvil.url, dep, seed)
        head = int(str(anvil.rpc("eth_blockNumber")), 16)
        import time

        deadline = time.monotonic() + 30
        while (latest_indexed_block(idx.engine) or 0) < head and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        stop.set()
        runner.join(10)
    truth = ground_truth(anvil.url, dep, postgres=postgres)
    assert db_rows(idx.engine, list(truth)) == truth
    # idempotence: a fresh indexer re-running over everything, and an explicit re-commit, change nothing
    idx2 = make_indexer(anvil, database_url, tmp_path / "dep.json")
    with idx2.engine.begin() as conn:
        conn.execute(text("DELETE FROM indexer_blocks"))
        conn.execute(text("DELETE FROM indexer_cursor"))
    idx2.run_once()
    assert db_rows(idx2.engine, list(truth)) == truth
    # views
    with idx2.engine.connect() as conn:
        contribs = conn.execute(text("SELECT kind, withdrawn FROM v_contributions")).all()
        assert {k for k, _ in contribs} == {"dataset", "compute"}
        assert sum(1 for k, w in contribs if k == "dataset" and w) == 10  # seeds 4, 8, ..., 40
        latest = conn.execute(text("SELECT COUNT(*) FROM v_attestations_latest")).scalar()
        assert latest == len({(r[6], r[7]) for r in truth["ev_attested"]})
        totals = payments_per_model_epoch(conn)
        assert sum(t.payments for t in totals) == len(truth["ev_payment_settled"])
        assert sum(t.amount for t in totals) == sum(int(r[9]) for r in truth["ev_payment_settled"])
        manifests = conn.execute(text("SELECT model_id, version FROM v_manifests_latest")).all()
        assert len(manifests) == 3 and all(v >= 18 for _, v in manifests)


def test_wrong_chain_is_refused(anvil: Anvil, sqlite_url: str, tmp_path: Path) -> None:
    dep = emitter_deployment(anvil.url, tmp_path / "dep.json")
    dep.chain_id = 1
    dep.save(tmp_path / "dep.json")
    idx = make_indexer(anvil, sqlite_url, tmp_path / "dep.json")
    with pytest.raises(WrongChainError, match="is chain 31337 but the deployment file is for chain 1"):
        idx.run_once()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "cairn.cli.index",
            "--once",
            "--rpc-url",
            anvil.url,
            "--database-url",
            sqlite_url,
            "--deployment",
            str(tmp_path / "dep.json"),
        ],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=60,
    )
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "deployment file is for chain 1" in lines[0], proc.stderr


def test_failover_url_on_another_chain_is_refused(anvil: Anvil, sqlite_url: str, tmp_path: Path) -> None:
    from support.rpc_fault_proxy import FaultProxy, Faults

    from cairn.cli.devchain import start_anvil

    emitter_deployment(anvil.url, tmp_path / "dep.json")
    with start_anvil(chain_id=999) as other, FaultProxy(anvil.url, Faults(http_5xx=1.0)) as dead:
        settings = Settings(rpc_urls=[dead.url, other.url], database_url=sqlite_url,
                            deployment_file=tmp_path / "dep.json")  # fmt: skip
        from cairn.core.deployment import load_deployment

        idx = Indexer(
            settings, load_deployment(tmp_path / "dep.json"), options=IndexerOptions(rpc_attempts=6)
        )
        with pytest.raises(WrongChainError, match=f"RPC {other.url} is chain 999"):
            idx.run_once()
